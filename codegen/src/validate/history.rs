//! `history`: what each namespace keeps for clients that resume, from the catalog-wide default
//! and the namespace's own setting.

use crate::model::History;
use crate::raw::{RawHistory, RawHistoryBounds};

use super::context::{At, Context};

/// What a namespace keeps when neither it nor the catalog says: the last 1,000 events, for ten
/// minutes.
pub const BUILTIN: History = History {
    size: 1000,
    ttl_secs: 600,
};

/// The most events one namespace may keep.
pub const MAX_SIZE: u64 = 1_000_000;

/// The longest a namespace may keep an event: 30 days.
pub const MAX_TTL_SECS: u64 = 30 * 24 * 3600;

/// The catalog-wide default (`history:` at the top level), over [`BUILTIN`].
pub(super) fn default(cx: &mut Context<'_>, raw: Option<&RawHistory>) -> Option<History> {
    resolve(cx, &At::path(&["history"]), raw, BUILTIN, Some(BUILTIN))
}

/// A namespace's history: its own setting, each key it leaves out taken from `default` (or
/// from [`BUILTIN`] where the default is `off`).
pub(super) fn namespace(
    cx: &mut Context<'_>,
    name: &str,
    raw: Option<&RawHistory>,
    default: Option<History>,
) -> Option<History> {
    let at = At::path(&["namespaces", name, "history"]);
    resolve(cx, &at, raw, default.unwrap_or(BUILTIN), default)
}

fn resolve(
    cx: &mut Context<'_>,
    at: &At,
    raw: Option<&RawHistory>,
    base: History,
    absent: Option<History>,
) -> Option<History> {
    match raw {
        None => absent,
        Some(RawHistory::Off) => None,
        Some(RawHistory::Keep(RawHistoryBounds { size, ttl })) => {
            let size = match *size {
                None => base.size,
                Some(0) => {
                    cx.error(
                        at,
                        "history size 0: a namespace that keeps nothing says `history: off`",
                        None,
                    );
                    base.size
                }
                Some(n) if n > MAX_SIZE => {
                    cx.error(
                        at,
                        format!("history size {n}: at most {MAX_SIZE} events may be kept"),
                        None,
                    );
                    base.size
                }
                Some(n) => n as u32,
            };
            let ttl_secs = match ttl.as_deref().map(parse_duration) {
                None => base.ttl_secs,
                Some(Ok(secs)) if (1..=MAX_TTL_SECS).contains(&secs) => secs as u32,
                Some(Ok(_)) => {
                    cx.error(
                        at,
                        format!(
                            "history ttl `{}`: it must be between 1s and 30d",
                            ttl.as_deref().unwrap_or_default()
                        ),
                        None,
                    );
                    base.ttl_secs
                }
                Some(Err(message)) => {
                    cx.error(
                        at,
                        message,
                        Some("write a whole number and a unit: `30s`, `10m`, `2h` or `7d`".into()),
                    );
                    base.ttl_secs
                }
            };
            Some(History { size, ttl_secs })
        }
    }
}

/// `30s`, `10m`, `2h`, `7d` as seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("history ttl `{text}` is not a duration")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("history ttl `{text}` is not a duration"))
}

/// `10m`-style text for a number of seconds: the largest unit that divides it.
pub fn format_duration(secs: u32) -> String {
    let secs = u64::from(secs);
    for (unit, scale) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs % scale == 0 {
            return format!("{}{unit}", secs / scale);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::{format_duration, parse_duration};

    #[test]
    fn durations_read_and_print_in_whole_units() {
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("10m"), Ok(600));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        for bad in [
            "",
            "10",
            "m",
            "1.5h",
            "-1m",
            "10 m",
            "10min",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format_duration(600), "10m");
        assert_eq!(format_duration(90), "90s");
        assert_eq!(format_duration(86_400), "1d");
        assert_eq!(format_duration(5400), "90m");
    }
}
