import Testing
import CLLMuxKernels
