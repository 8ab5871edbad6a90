//! Which counter each button counts on, from the build's `TALLY_BUTTONS`.
//!
//! Two comma-separated items, one per button (first the +1 button, then the −1 button); one
//! item binds both. An item is a counter name (empty: the default counter), optionally
//! followed by `:+` or `:-` to choose the direction (otherwise the first button adds and the
//! second subtracts):
//!
//! | `TALLY_BUTTONS` | first button | second button |
//! |---|---|---|
//! | unset or empty | default +1 | default −1 |
//! | `doors` | `doors` +1 | `doors` −1 |
//! | `entries:+,exits:+` | `entries` +1 | `exits` +1 |
//! | `,parts` | default +1 | `parts` −1 |
//!
//! Names are those of every interface (1–64 bytes of `[A-Za-z0-9._-]`). [`check`] runs at
//! compile time in each firmware, so a bad setting fails the build with the reason.

use tally_core::named::{CounterName, MAX_NAME};

/// What one button counts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The named counter, `None` for the default counter.
    pub counter: Option<CounterName>,
    /// +1 or −1 per press.
    pub step: i8,
}

/// The two buttons' bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buttons {
    /// The first (+1 by default) button.
    pub first: Binding,
    /// The second (−1 by default) button.
    pub second: Binding,
}

/// Why a `TALLY_BUTTONS` setting was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ButtonsError {
    /// More than two items.
    TooManyItems,
    /// A name is longer than 64 bytes or has a byte outside `[A-Za-z0-9._-]`.
    BadName,
    /// A direction other than `:+` or `:-`.
    BadDirection,
}

impl core::fmt::Display for ButtonsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ButtonsError::TooManyItems => "TALLY_BUTTONS has more than two items",
            ButtonsError::BadName => "TALLY_BUTTONS names a counter badly (1-64 of A-Za-z0-9._-)",
            ButtonsError::BadDirection => "TALLY_BUTTONS direction must be :+ or :-",
        })
    }
}

impl Buttons {
    /// Both buttons on the default counter, +1 and −1.
    pub const DEFAULT: Buttons = Buttons {
        first: Binding {
            counter: None,
            step: 1,
        },
        second: Binding {
            counter: None,
            step: -1,
        },
    };

    /// Parses a setting (see the module docs).
    pub fn parse(text: &str) -> Result<Buttons, ButtonsError> {
        let mut items = text.split(',');
        let first = items.next().unwrap_or("");
        let second = items.next().unwrap_or(first);
        if items.next().is_some() {
            return Err(ButtonsError::TooManyItems);
        }
        Ok(Buttons {
            first: binding(first, 1)?,
            second: binding(second, -1)?,
        })
    }

    /// Whether any button counts on a named counter.
    pub fn named(&self) -> impl Iterator<Item = &CounterName> {
        self.first.counter.iter().chain(self.second.counter.iter())
    }

    /// Whether any button counts on the default counter.
    pub fn binds_default(&self) -> bool {
        self.first.counter.is_none() || self.second.counter.is_none()
    }
}

fn binding(item: &str, step: i8) -> Result<Binding, ButtonsError> {
    let item = item.trim();
    let (name, step) = match item.split_once(':') {
        Some((n, "+")) => (n, 1),
        Some((n, "-")) => (n, -1),
        Some(_) => return Err(ButtonsError::BadDirection),
        None => (item, step),
    };
    let counter = match name {
        "" => None,
        n => Some(CounterName::new(n).map_err(|_| ButtonsError::BadName)?),
    };
    Ok(Binding { counter, step })
}

/// Checks a setting at compile time (`const _: () = tally_board::buttons::checked(...)`) or
/// at run time: at most two items, names of `[A-Za-z0-9._-]` up to 64 bytes, directions `:+`
/// or `:-`; spaces around items are allowed.
pub const fn check(text: &str) -> Result<(), ButtonsError> {
    let b = text.as_bytes();
    let mut items = 1;
    let mut name_len = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b',' => {
                items += 1;
                if items > 2 {
                    return Err(ButtonsError::TooManyItems);
                }
                name_len = 0;
            }
            b':' => {
                let sign = if i + 1 < b.len() { b[i + 1] } else { 0 };
                if sign != b'+' && sign != b'-' {
                    return Err(ButtonsError::BadDirection);
                }
                // Only spaces may follow the direction, up to the item's end.
                let mut j = i + 2;
                while j < b.len() && b[j] != b',' {
                    if b[j] != b' ' {
                        return Err(ButtonsError::BadDirection);
                    }
                    j += 1;
                }
                i = j;
                continue;
            }
            b' ' => {}
            c if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-' => {
                name_len += 1;
                if name_len > MAX_NAME {
                    return Err(ButtonsError::BadName);
                }
            }
            _ => return Err(ButtonsError::BadName),
        }
        i += 1;
    }
    Ok(())
}

/// The build's setting, checked: a bad `TALLY_BUTTONS` stops the build with the reason. Use
/// as `const BUTTONS: &str = tally_board::buttons::checked(option_env!("TALLY_BUTTONS"));`.
pub const fn checked(text: Option<&'static str>) -> &'static str {
    let Some(text) = text else { return "" };
    match check(text) {
        Ok(()) => text,
        Err(ButtonsError::TooManyItems) => {
            panic!("TALLY_BUTTONS: at most two items (one per button)")
        }
        Err(ButtonsError::BadName) => panic!("TALLY_BUTTONS: names are 1-64 bytes of A-Za-z0-9._-"),
        Err(ButtonsError::BadDirection) => panic!("TALLY_BUTTONS: a direction is :+ or :-"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(b: &Binding) -> Option<&str> {
        b.counter.as_ref().map(|c| c.as_str())
    }

    #[test]
    fn the_documented_settings_bind_as_the_table_says() {
        assert_eq!(Buttons::parse(""), Ok(Buttons::DEFAULT));
        let b = Buttons::parse("doors").unwrap();
        assert_eq!((named(&b.first), b.first.step), (Some("doors"), 1));
        assert_eq!((named(&b.second), b.second.step), (Some("doors"), -1));
        assert!(!b.binds_default());
        let b = Buttons::parse("entries:+, exits:+").unwrap();
        assert_eq!((named(&b.first), b.first.step), (Some("entries"), 1));
        assert_eq!((named(&b.second), b.second.step), (Some("exits"), 1));
        let b = Buttons::parse(",parts").unwrap();
        assert_eq!((named(&b.first), b.first.step), (None, 1));
        assert_eq!((named(&b.second), b.second.step), (Some("parts"), -1));
        assert!(b.binds_default());
        assert_eq!(b.named().count(), 1);
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        assert_eq!(Buttons::parse("a,b,c"), Err(ButtonsError::TooManyItems));
        assert_eq!(Buttons::parse("no/slash"), Err(ButtonsError::BadName));
        assert_eq!(Buttons::parse(&"x".repeat(65)), Err(ButtonsError::BadName));
        assert!(Buttons::parse(&"x".repeat(64)).is_ok());
        assert_eq!(Buttons::parse("doors:*"), Err(ButtonsError::BadDirection));
        assert_eq!(Buttons::parse("doors:+x"), Err(ButtonsError::BadDirection));
        assert_eq!(checked(None), "");
        const OK: &str = checked(Some("doors"));
        assert_eq!(OK, "doors");
    }

    #[test]
    #[should_panic(expected = "at most two items")]
    fn a_bad_build_setting_stops() {
        let _ = checked(Some("a,b,c"));
    }
}
