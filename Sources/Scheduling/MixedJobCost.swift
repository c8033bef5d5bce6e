/// What one model's mixed jobs cost (`mux` with mixed jobs): the time its decoding sequences wait
/// per token as a line in the prompt tokens a job carries, `interval = base + perToken × prompt`,
/// fitted by least squares over the jobs' times from launch to the first planning after they
/// ended (`Scheduler.measureMixedJob`). Older measurements
/// count less (`forgetting` per new one), so the line follows the decode batch as it grows and
/// shrinks and the other models' jobs as they come and go.
///
/// The scheduler sizes a mixed job's prompt chunk from it so that the model's next token stays
/// within its per-token target (`Scheduler.mixedPromptAllowance`): Sarathi-Serve (Agrawal et
/// al., OSDI 2024) picks its chunk size for a per-token target from an offline profile; this is
/// the same idea, measured online, so a unit needs no profile and a colocated model's load shows
/// in the line.
public struct MixedJobCost: Sendable {
    /// The weight each earlier measurement keeps when a new one comes: about the last ten count.
    public static let forgetting = 0.9
    /// The least spread of prompt tokens (standard deviation) over the weighted measurements
    /// for a slope: below it the line is a guess from noise.
    public static let minimumPromptSpread = 8.0

    private var weight = 0.0
    private var sumPrompt = 0.0
    private var sumInterval = 0.0
    private var sumPromptSquared = 0.0
    private var sumPromptInterval = 0.0
    /// Prompt tokens of the model's job with decode tokens in flight, until it is measured.
    public internal(set) var promptTokensInFlight: Int?
    /// The last measurement: the prompt tokens of the job it timed and its interval in seconds.
    public internal(set) var lastMeasured: (promptTokens: Int, interval: Double)?

    /// No measurements yet.
    public init() {}

    /// Adds one measurement: a job with `promptTokens` prompt tokens kept its model's decoding
    /// sequences waiting `interval` seconds for their next token.
    public mutating func add(promptTokens: Int, interval: Double) {
        let prompt = Double(promptTokens)
        let keep = Self.forgetting
        weight = keep * weight + 1
        sumPrompt = keep * sumPrompt + prompt
        sumInterval = keep * sumInterval + interval
        sumPromptSquared = keep * sumPromptSquared + prompt * prompt
        sumPromptInterval = keep * sumPromptInterval + prompt * interval
        lastMeasured = (promptTokens, interval)
    }

    /// The fitted line: seconds per token with no prompt tokens in the job, and seconds more per
    /// prompt token. Nil until the measured jobs' prompt tokens spread by `minimumPromptSpread`.
    public var line: (base: Double, perToken: Double)? {
        guard weight > 0 else { return nil }
        let meanPrompt = sumPrompt / weight
        let variance = sumPromptSquared / weight - meanPrompt * meanPrompt
        guard variance >= Self.minimumPromptSpread * Self.minimumPromptSpread else { return nil }
        let meanInterval = sumInterval / weight
        let perToken = (sumPromptInterval / weight - meanPrompt * meanInterval) / variance
        return (meanInterval - perToken * meanPrompt, perToken)
    }
}
