//! Business hours: whether a moment falls inside a channel's opening hours, read in the
//! channel's IANA time zone (so daylight-saving changes are the zone's business).

use chrono::{DateTime, Datelike as _, Timelike as _, Utc, Weekday};

use super::settings::{Availability, Day, parse_hhmm};

fn day_of(w: Weekday) -> Day {
    match w {
        Weekday::Mon => Day::Mon,
        Weekday::Tue => Day::Tue,
        Weekday::Wed => Day::Wed,
        Weekday::Thu => Day::Thu,
        Weekday::Fri => Day::Fri,
        Weekday::Sat => Day::Sat,
        Weekday::Sun => Day::Sun,
    }
}

/// Whether `now` is inside `a.hours` in `a.time_zone` (`open` ≤ local time < `close`).
/// An unknown zone reads as UTC (settings are validated on write, so it does not happen).
pub fn within_hours(a: &Availability, now: DateTime<Utc>) -> bool {
    let tz: chrono_tz::Tz = a.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let local = now.with_timezone(&tz);
    let day = day_of(local.weekday());
    let minute = local.hour() * 60 + local.minute();
    a.hours.iter().any(|h| {
        h.day == day
            && matches!(
                (parse_hhmm(&h.open), parse_hhmm(&h.close)),
                (Some(open), Some(close)) if open <= minute && minute < close
            )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chrono::TimeZone as _;

    use super::*;
    use crate::widget::settings::{AvailabilityMode, Hours};

    fn paris_weekdays() -> Availability {
        Availability {
            mode: AvailabilityMode::BusinessHours,
            time_zone: "Europe/Paris".into(),
            hours: vec![
                Hours {
                    day: Day::Mon,
                    open: "09:00".into(),
                    close: "17:30".into(),
                },
                Hours {
                    day: Day::Sat,
                    open: "10:00".into(),
                    close: "24:00".into(),
                },
            ],
        }
    }

    #[test]
    fn hours_are_read_in_the_time_zone() {
        let a = paris_weekdays();
        // Monday 2025-01-06: Paris is UTC+1 in winter.
        assert!(!within_hours(
            &a,
            Utc.with_ymd_and_hms(2025, 1, 6, 7, 59, 0).unwrap()
        ));
        assert!(within_hours(
            &a,
            Utc.with_ymd_and_hms(2025, 1, 6, 8, 0, 0).unwrap()
        ));
        assert!(within_hours(
            &a,
            Utc.with_ymd_and_hms(2025, 1, 6, 16, 29, 0).unwrap()
        ));
        assert!(!within_hours(
            &a,
            Utc.with_ymd_and_hms(2025, 1, 6, 16, 30, 0).unwrap()
        ));
        // Monday 2025-07-07: UTC+2 in summer.
        assert!(within_hours(
            &a,
            Utc.with_ymd_and_hms(2025, 7, 7, 7, 0, 0).unwrap()
        ));
        assert!(!within_hours(
            &a,
            Utc.with_ymd_and_hms(2025, 7, 7, 15, 30, 0).unwrap()
        ));
        // Tuesday: closed all day.
        assert!(!within_hours(
            &a,
            Utc.with_ymd_and_hms(2025, 1, 7, 12, 0, 0).unwrap()
        ));
        // Saturday until midnight local (= 23:00 UTC in winter).
        assert!(within_hours(
            &a,
            Utc.with_ymd_and_hms(2025, 1, 11, 22, 59, 0).unwrap()
        ));
        assert!(!within_hours(
            &a,
            Utc.with_ymd_and_hms(2025, 1, 11, 23, 0, 0).unwrap()
        ));
    }
}
