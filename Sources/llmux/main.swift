print("llmux")
