/// Memory owned by (or borrowed into) one device. On the CPU it is host memory; a GPU backend
/// keeps a device address here instead. Kernels receive raw addresses; no element is copied to
/// the host unless `copyToHost` is called.
public final class DeviceBuffer: @unchecked Sendable {
    /// Start of the memory (host address on the CPU).
    public let address: UnsafeMutableRawPointer
    /// Size in bytes.
    public let byteCount: Int
    /// Whether `deinit` frees the memory (false for memory-mapped weights).
    private let owned: Bool
    /// Frees device memory (set by GPU backends; nil for host memory).
    private let release: (@Sendable (UnsafeMutableRawPointer) -> Void)?
    /// Keeps a borrowed mapping alive (e.g. the safetensors file object) as long as the buffer.
    private let keepAlive: AnyObject?

    /// Allocates `byteCount` bytes aligned to 64 bytes, zero-filled.
    public init(allocating byteCount: Int) {
        let size = max(byteCount, 64)
        self.address = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        self.address.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        self.byteCount = byteCount
        self.owned = true
        self.keepAlive = nil
        self.release = nil
    }

    /// Wraps memory that someone else owns (a memory-mapped checkpoint); `owner` is retained.
    public init(borrowing address: UnsafeRawPointer, byteCount: Int, owner: AnyObject?) {
        self.address = UnsafeMutableRawPointer(mutating: address)
        self.byteCount = byteCount
        self.owned = false
        self.keepAlive = owner
        self.release = nil
    }

    /// Device memory at `deviceAddress` (stored in `address` as a bit pattern, never dereferenced
    /// on the host); `release` frees it when the buffer goes away (nil: borrowed, `owner` kept).
    public init(deviceAddress: UInt64, byteCount: Int, owner: AnyObject? = nil,
                release: (@Sendable (UnsafeMutableRawPointer) -> Void)?) {
        self.address = UnsafeMutableRawPointer(bitPattern: UInt(deviceAddress))!
        self.byteCount = byteCount
        self.owned = false
        self.keepAlive = owner
        self.release = release
    }

    /// The address as a 64-bit integer (a `CUdeviceptr` on CUDA).
    public var deviceAddress: UInt64 { UInt64(UInt(bitPattern: address)) }

    deinit {
        if owned { address.deallocate() }
        release?(address)
    }
}

/// A 2-D view (rows × columns, with a row stride) of a device buffer. Vectors are 1 × n.
public struct Tensor: @unchecked Sendable {
    /// The memory.
    public let buffer: DeviceBuffer
    /// Element offset of row 0, column 0.
    public let offset: Int
    /// Element type.
    public let dtype: DType
    /// Number of rows.
    public let rows: Int
    /// Number of columns.
    public let columns: Int
    /// Elements between the starts of consecutive rows.
    public let rowStride: Int

    /// A view; `rowStride` defaults to `columns` (contiguous).
    public init(buffer: DeviceBuffer, offset: Int = 0, dtype: DType, rows: Int, columns: Int, rowStride: Int? = nil) {
        self.buffer = buffer
        self.offset = offset
        self.dtype = dtype
        self.rows = rows
        self.columns = columns
        self.rowStride = rowStride ?? columns
        precondition((offset + (rows - 1) * self.rowStride + columns) * dtype.byteSize <= buffer.byteCount || rows == 0,
                     "tensor view exceeds its buffer")
    }

    /// Address of the first element.
    public var address: UnsafeMutableRawPointer { buffer.address + offset * dtype.byteSize }
    /// Address of the first element as a 64-bit integer (a `CUdeviceptr` on CUDA).
    public var deviceAddress: UInt64 { buffer.deviceAddress + UInt64(offset * dtype.byteSize) }

    /// `count` rows starting at `start`.
    public func rows(_ start: Int, count: Int) -> Tensor {
        Tensor(buffer: buffer, offset: offset + start * rowStride, dtype: dtype, rows: count, columns: columns, rowStride: rowStride)
    }

    /// Columns `start ..< start + count` of every row (a strided view).
    public func columns(_ start: Int, count: Int) -> Tensor {
        Tensor(buffer: buffer, offset: offset + start, dtype: dtype, rows: rows, columns: count, rowStride: rowStride)
    }

    /// Typed f32 address (precondition: dtype is f32).
    public var floats: UnsafeMutablePointer<Float> {
        precondition(dtype == .f32, "expected an f32 tensor")
        return address.assumingMemoryBound(to: Float.self)
    }
}

/// A tensor of 32-bit integers on the device (token ids, positions, page tables).
public struct IntTensor: @unchecked Sendable {
    /// The memory.
    public let buffer: DeviceBuffer
    /// Number of elements.
    public let count: Int
    /// A view over a whole buffer.
    public init(buffer: DeviceBuffer, count: Int) {
        self.buffer = buffer
        self.count = count
    }
    /// The address as a 64-bit integer (a `CUdeviceptr` on CUDA).
    public var deviceAddress: UInt64 { buffer.deviceAddress }
    /// Elements `start ..< start + count` as a tensor of their own (borrowing this buffer).
    public func slice(_ start: Int, count: Int) -> IntTensor {
        precondition((start + count) * 4 <= buffer.byteCount, "slice exceeds its buffer")
        return IntTensor(buffer: DeviceBuffer(borrowing: buffer.address + start * 4, byteCount: count * 4, owner: buffer), count: count)
    }
    /// Typed address.
    public var pointer: UnsafeMutablePointer<Int32> { buffer.address.assumingMemoryBound(to: Int32.self) }
}
