/// Expressions of the template language, as parsed from tag tokens.
indirect enum JinjaExpr: Sendable {
    case literal(JinjaValue)
    case name(String)
    case list([JinjaExpr])
    case dict([(JinjaExpr, JinjaExpr)])
    case attribute(JinjaExpr, String)
    case item(JinjaExpr, JinjaExpr)
    case slice(JinjaExpr, start: JinjaExpr?, stop: JinjaExpr?, step: JinjaExpr?)
    case call(JinjaExpr, JinjaArguments)
    case filter(JinjaExpr, String, JinjaArguments)
    case test(JinjaExpr, String, JinjaArguments, negated: Bool)
    case not(JinjaExpr)
    case negate(JinjaExpr)
    case plus(JinjaExpr)
    case binary(String, JinjaExpr, JinjaExpr)
    case and(JinjaExpr, JinjaExpr)
    case or(JinjaExpr, JinjaExpr)
    /// A chain such as `a < b <= c`, evaluated pairwise like Python.
    case compare(JinjaExpr, [(String, JinjaExpr)])
    /// `then if condition else otherwise`; a missing `else` yields undefined.
    case conditional(condition: JinjaExpr, then: JinjaExpr, otherwise: JinjaExpr?)
}

/// Positional and keyword arguments of a call, filter or test.
struct JinjaArguments: Sendable {
    var positional: [JinjaExpr] = []
    var keyword: [(String, JinjaExpr)] = []
}

/// Where `{% set %}` stores its value.
enum JinjaSetTarget: Sendable {
    case name(String)
    /// `a, b = …`: unpacks a sequence.
    case names([String])
    /// `ns.attr = …`: assigns into a namespace.
    case attribute(String, String)
}

/// A `{% macro %}` definition.
struct JinjaMacro: Sendable {
    let name: String
    let parameters: [String]
    /// Default expressions, aligned with the trailing parameters that have them.
    let defaults: [String: JinjaExpr]
    let body: [JinjaNode]
}

/// Statements of the template: the body of a template is a list of these.
indirect enum JinjaNode: Sendable {
    case text(String)
    case output(JinjaExpr)
    /// `if`/`elif` branches in order, then the `else` body.
    case ifChain([(JinjaExpr, [JinjaNode])], otherwise: [JinjaNode])
    case forLoop(targets: [String], iterable: JinjaExpr, filter: JinjaExpr?, body: [JinjaNode], otherwise: [JinjaNode])
    case set(JinjaSetTarget, JinjaExpr)
    /// `{% set x %}…{% endset %}`: captures rendered output.
    case setBlock(String, [JinjaNode])
    case macro(JinjaMacro)
    /// `{% filter name %}…{% endfilter %}`: applies a filter to rendered output.
    case filterBlock(String, JinjaArguments, [JinjaNode])
    case breakLoop
    case continueLoop
}
