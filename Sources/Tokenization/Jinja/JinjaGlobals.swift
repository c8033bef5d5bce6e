import Foundation

/// Global functions available to templates: Jinja's `range`, `namespace`, `dict`, and
/// transformers' `raise_exception` and `strftime_now`.
extension JinjaInterpreter {
    func callGlobal(_ name: String, _ positional: [JinjaValue], _ keyword: [(String, JinjaValue)]) throws -> JinjaValue? {
        switch name {
        case "raise_exception":
            throw ChatTemplateError.raised(positional.first?.pythonString ?? keyword.first?.1.pythonString ?? "")
        case "range":
            let ints = try positional.map { value -> Int in
                guard let i = value.intValue else {
                    throw ChatTemplateError.runtime("'\(value.typeName)' object cannot be interpreted as an integer")
                }
                return i
            }
            let (start, stop, step): (Int, Int, Int)
            switch ints.count {
            case 1: (start, stop, step) = (0, ints[0], 1)
            case 2: (start, stop, step) = (ints[0], ints[1], 1)
            case 3: (start, stop, step) = (ints[0], ints[1], ints[2])
            default: throw ChatTemplateError.runtime("range expected 1 to 3 arguments, got \(ints.count)")
            }
            guard step != 0 else { throw ChatTemplateError.runtime("range() arg 3 must not be zero") }
            let count = step > 0 ? (stop > start ? (Double(stop) - Double(start)) / Double(step) : 0)
                : (start > stop ? (Double(start) - Double(stop)) / Double(-step) : 0)
            guard count.rounded(.up) <= Double(Self.maxSequence) else {
                throw ChatTemplateError.runtime("range too large")
            }
            return .array(Swift.stride(from: start, to: stop, by: step).map { .int($0) })
        case "namespace", "dict":
            var object = JinjaObject()
            for value in positional {
                guard case .object(let initial) = value else {
                    throw ChatTemplateError.runtime("\(name)() positional argument must be a mapping")
                }
                for pair in initial.pairs { object[pair.key] = pair.value }
            }
            for (key, value) in keyword { object[key] = value }
            return .object(object)
        case "strftime_now":
            guard case .string(let format)? = positional.first else {
                throw ChatTemplateError.runtime("strftime_now() needs a format string")
            }
            return .string(JinjaDate.strftime(format, now()))
        default:
            return nil
        }
    }
}

/// A C-locale `strftime` for the directives chat templates use (`%d %b %Y` and friends), in the
/// process's time zone like Python's `datetime.now()`.
enum JinjaDate {
    static let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                         "October", "November", "December"]
    static let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

    static func strftime(_ format: String, _ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone.current
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let year = c.year ?? 1970, month = c.month ?? 1, day = c.day ?? 1
        let hour = c.hour ?? 0, minute = c.minute ?? 0, second = c.second ?? 0, weekday = (c.weekday ?? 1) - 1
        let dayOfYear = calendar.ordinality(of: .day, in: .year, for: date) ?? 1
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        var out = ""
        var percent = false
        for ch in format {
            guard percent else {
                if ch == "%" { percent = true } else { out.append(ch) }
                continue
            }
            percent = false
            switch ch {
            case "d": out += two(day)
            case "m": out += two(month)
            case "Y": out += String(year)
            case "y": out += two(year % 100)
            case "b", "h": out += String(months[month - 1].prefix(3))
            case "B": out += months[month - 1]
            case "a": out += String(days[weekday].prefix(3))
            case "A": out += days[weekday]
            case "H": out += two(hour)
            case "I": out += two(hour % 12 == 0 ? 12 : hour % 12)
            case "p": out += hour < 12 ? "AM" : "PM"
            case "M": out += two(minute)
            case "S": out += two(second)
            case "j": out += String(repeating: "0", count: max(0, 3 - String(dayOfYear).count)) + String(dayOfYear)
            case "w": out += String(weekday)
            case "%": out += "%"
            default: out += "%" + String(ch)
            }
        }
        if percent { out += "%" }
        return out
    }
}
