import CHDF5

/// Float → Float16, eight at a time with F16C where the CPU has it (`ch5_float_to_half`), else one by one in
/// Swift (a software call per value on x86-64's baseline); the same bits either way (round to nearest even).
public enum HalfConversion {
    /// Writes `Float16(source[i])` into `destination[i]` for every i of `source` (`destination` at least as long).
    public static func convert(_ source: UnsafeBufferPointer<Float>, into destination: UnsafeMutableBufferPointer<Float16>,
                               portable: Bool = false) {
        precondition(destination.count >= source.count)
        guard let input = source.baseAddress, let output = destination.baseAddress else { return }
        let done = !portable && output.withMemoryRebound(to: UInt16.self, capacity: source.count) {
            ch5_float_to_half(input, $0, source.count) != 0
        }
        if done { return }
        for i in 0..<source.count { output[i] = Float16(input[i]) }
    }
}
