//! Cron expressions (croner) read in an IANA time zone (chrono-tz), and where a parse error is.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A cron expression that does not parse, with the field and column where it goes wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronProblem {
    /// The 1-based column (character position) of the offending field in the expression.
    pub position: usize,
    /// The field's name (`second`, `minute`, `hour`, `day of month`, `month`, `day of week`)
    /// when one field is at fault.
    pub field: Option<&'static str>,
    /// croner's message.
    pub message: String,
}

impl fmt::Display for CronProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(
                f,
                "invalid cron expression at position {} ({field} field): {}",
                self.position, self.message
            ),
            None => write!(
                f,
                "invalid cron expression at position {}: {}",
                self.position, self.message
            ),
        }
    }
}

fn parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Optional).build()
}

/// Parses `expression` (5 fields, or 6 with seconds first; `@daily` and friends).
pub fn parse(expression: &str) -> Result<Cron, CronProblem> {
    let error = match parser().parse(expression) {
        Ok(cron) => return Ok(cron),
        Err(error) => error,
    };
    let message = error.to_string();
    // Find the field at fault: the first one whose replacement by `*` makes it parse.
    let fields: Vec<(usize, &str)> = split_fields(expression);
    if fields.len() == 5 || fields.len() == 6 {
        let names: &[&'static str] = if fields.len() == 6 {
            &[
                "second",
                "minute",
                "hour",
                "day of month",
                "month",
                "day of week",
            ]
        } else {
            &["minute", "hour", "day of month", "month", "day of week"]
        };
        for (i, (column, _)) in fields.iter().enumerate() {
            let candidate: Vec<&str> = fields
                .iter()
                .enumerate()
                .map(|(j, (_, f))| if i == j { "*" } else { *f })
                .collect();
            if parser().parse(&candidate.join(" ")).is_ok() {
                return Err(CronProblem {
                    position: column + 1,
                    field: names.get(i).copied(),
                    message,
                });
            }
        }
        return Err(CronProblem {
            position: fields.first().map_or(1, |(c, _)| c + 1),
            field: None,
            message,
        });
    }
    // A wrong number of fields: point after the last one (too few) or at the first extra.
    let position = match fields.get(6) {
        Some((column, _)) => column + 1,
        None => expression.chars().count() + 1,
    };
    Err(CronProblem {
        position,
        field: None,
        message: if fields.is_empty() {
            "the expression is empty".to_owned()
        } else {
            format!("expected 5 or 6 fields, got {}", fields.len())
        },
    })
}

/// The fields of `expression` with the 0-based column each starts at.
fn split_fields(expression: &str) -> Vec<(usize, &str)> {
    let mut fields = Vec::new();
    let mut start = None;
    for (column, (byte, ch)) in expression.char_indices().enumerate() {
        match (ch.is_whitespace(), start) {
            (false, None) => start = Some((column, byte)),
            (true, Some((c, b))) => {
                fields.push((c, &expression[b..byte]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some((c, b)) = start {
        fields.push((c, &expression[b..]));
    }
    fields
}

/// The IANA zone named `name` (`UTC`, `Europe/Berlin`).
pub fn zone(name: &str) -> Option<Tz> {
    Tz::from_str(name).ok()
}

/// A parsed expression in its zone.
#[derive(Clone, Debug)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
    expression: String,
}

impl CronSchedule {
    /// Parses `expression` in the zone `timezone`.
    pub fn new(expression: &str, timezone: &str) -> Result<Self, String> {
        let cron = parse(expression).map_err(|e| e.to_string())?;
        let zone = zone(timezone).ok_or_else(|| format!("unknown time zone \"{timezone}\""))?;
        Ok(Self {
            cron,
            zone,
            expression: expression.to_owned(),
        })
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The zone's IANA name.
    pub fn zone_name(&self) -> &str {
        self.zone.name()
    }

    /// The first occurrence strictly after `after`. Wall-clock times that a DST change skips
    /// do not occur; times it repeats occur once (croner's rules).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_hour_names_its_position_and_field() {
        let problem = parse("0 */5 25 * * *").unwrap_err();
        assert_eq!(problem.position, 7);
        assert_eq!(problem.field, Some("hour"));
    }

    #[test]
    fn too_many_fields_point_at_the_first_extra_one() {
        let problem = parse("* * * * * * * *").unwrap_err();
        assert_eq!(problem.position, 13);
        assert!(problem.message.contains("got 8"), "{problem}");
    }

    #[test]
    fn last_day_weekday_and_nth_weekday_parse() {
        for expression in ["0 0 L * *", "0 0 15W * *", "0 0 * * 5#2", "0 0 0 * * MON"] {
            assert!(parse(expression).is_ok(), "{expression}");
        }
    }
}
