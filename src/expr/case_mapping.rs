//! How `lower` and `upper` map letters: as the source database does, which
//! depends on its character classification (`LC_CTYPE`) and locale provider,
//! read with the catalog ([`CaseMapping::of_database`]).

use std::sync::atomic::{AtomicU8, Ordering};

/// PostgreSQL's case mapping for the database's default collation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseMapping {
    /// `LC_CTYPE` `C` or `POSIX`: ASCII letters only (`lower('É')` is `É`).
    Ascii,
    /// A libc locale (`C.UTF-8`, `en_US.UTF-8`): each character alone, as
    /// `towlower` and `towupper` map it: `Σ` is always `σ`, `ß` stays `ß`
    /// in upper case, `İ` becomes `i`.
    PerCharacter,
    /// ICU: Unicode's full mapping (a final `Σ` becomes `ς`, `ß` becomes
    /// `SS`). Also the mapping before the database is known.
    Unicode,
}

/// The mapping of the database last read, for every expression of the
/// process: one process follows one database.
static CURRENT: AtomicU8 = AtomicU8::new(CaseMapping::Unicode as u8);

impl CaseMapping {
    /// The mapping of a database whose `datctype` and `datlocprovider`
    /// (`c` libc, `i` ICU; absent before PostgreSQL 15) are given.
    pub fn of_database(ctype: &str, provider: Option<&str>) -> CaseMapping {
        match (provider, ctype) {
            (Some("i"), _) => CaseMapping::Unicode,
            (_, "C" | "POSIX") => CaseMapping::Ascii,
            _ => CaseMapping::PerCharacter,
        }
    }

    /// Makes `self` the mapping `lower` and `upper` use from now on.
    pub fn set_current(self) {
        CURRENT.store(self as u8, Ordering::Relaxed);
    }

    pub fn current() -> CaseMapping {
        match CURRENT.load(Ordering::Relaxed) {
            v if v == CaseMapping::Ascii as u8 => CaseMapping::Ascii,
            v if v == CaseMapping::PerCharacter as u8 => CaseMapping::PerCharacter,
            _ => CaseMapping::Unicode,
        }
    }

    pub fn lower(self, text: &str) -> String {
        match self {
            CaseMapping::Ascii => text.to_ascii_lowercase(),
            // `İ` lowers to `i` and a combining dot in Unicode; libc keeps the `i`.
            CaseMapping::PerCharacter => text
                .chars()
                .map(|c| c.to_lowercase().next().unwrap_or(c))
                .collect(),
            CaseMapping::Unicode => text.to_lowercase(),
        }
    }

    pub fn upper(self, text: &str) -> String {
        match self {
            CaseMapping::Ascii => text.to_ascii_uppercase(),
            // A character whose upper case is several (`ß`, `ŉ`) has none in libc.
            CaseMapping::PerCharacter => text
                .chars()
                .map(|c| {
                    let mut upper = c.to_uppercase();
                    match (upper.next(), upper.next()) {
                        (Some(single), None) => single,
                        _ => c,
                    }
                })
                .collect(),
            CaseMapping::Unicode => text.to_uppercase(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CaseMapping::{self, *};

    /// What PostgreSQL 15 returns for `lower` and `upper` of these words in
    /// a database of each kind (`C`, `C.UTF-8` with libc, ICU).
    #[test]
    fn each_mapping_maps_as_postgres_does_in_its_kind_of_database() {
        let cases: [(CaseMapping, &str, &str, &str); 9] = [
            (Ascii, "ΣΑΣ École", "ΣΑΣ École", "ΣΑΣ ÉCOLE"),
            (Ascii, "straße", "straße", "STRAßE"),
            (Ascii, "İstanbul", "İstanbul", "İSTANBUL"),
            (PerCharacter, "ΣΑΣ École", "σασ école", "ΣΑΣ ÉCOLE"),
            (PerCharacter, "straße", "straße", "STRAßE"),
            (PerCharacter, "İstanbul", "istanbul", "İSTANBUL"),
            (Unicode, "ΣΑΣ École", "σας école", "ΣΑΣ ÉCOLE"),
            (Unicode, "straße", "straße", "STRASSE"),
            (Unicode, "İstanbul", "i\u{307}stanbul", "İSTANBUL"),
        ];
        for (mapping, text, lower, upper) in cases {
            assert_eq!(mapping.lower(text), lower, "{mapping:?} lower({text})");
            assert_eq!(mapping.upper(text), upper, "{mapping:?} upper({text})");
        }
    }

    #[test]
    fn the_database_settings_choose_the_mapping() {
        assert_eq!(CaseMapping::of_database("C", Some("c")), Ascii);
        assert_eq!(CaseMapping::of_database("POSIX", None), Ascii);
        assert_eq!(CaseMapping::of_database("C.UTF-8", Some("c")), PerCharacter);
        assert_eq!(CaseMapping::of_database("en_US.utf8", None), PerCharacter);
        assert_eq!(CaseMapping::of_database("C", Some("i")), Unicode);
    }
}
