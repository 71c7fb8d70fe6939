//! SQL `LIKE` / `ILIKE` pattern matching: `%` matches any run of characters,
//! `_` exactly one, and the escape character (backslash unless `ESCAPE` says
//! otherwise) makes the next character literal.
//!
//! Matching is the two-pointer wildcard algorithm, so its cost is at most
//! text length × pattern length: no pattern can make it backtrack
//! exponentially.

use super::case_mapping::CaseMapping;
use super::error::{Fault, quoted};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    AnyRun,
}

/// Whether `text` matches `pattern`; ILIKE compares lower-cased text.
pub(crate) fn like_matches(
    text: &str,
    pattern: &str,
    escape: Option<char>,
    case_insensitive: bool,
) -> Result<bool, Fault> {
    if case_insensitive {
        // PostgreSQL's ILIKE in a multibyte encoding is LIKE over `lower()`
        // of both sides, with the database's case mapping (Rust's own
        // would fold `ΣΑΣ` to `σας` and `İ` to two characters).
        let lower = |text: &str| CaseMapping::current().lower(text);
        let escape = escape.map(|c| lower(&c.to_string()).chars().next().unwrap_or(c));
        let tokens = tokenize(&lower(pattern), escape)?;
        Ok(matches_tokens(
            &lower(text).chars().collect::<Vec<_>>(),
            &tokens,
        ))
    } else {
        let tokens = tokenize(pattern, escape)?;
        Ok(matches_tokens(&text.chars().collect::<Vec<_>>(), &tokens))
    }
}

fn tokenize(pattern: &str, escape: Option<char>) -> Result<Vec<Token>, Fault> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        let token = match c {
            _ if Some(c) == escape => Token::Literal(chars.next().ok_or_else(|| {
                Fault::InvalidValue(format!(
                    "LIKE pattern {} must not end with the escape character",
                    quoted(pattern)
                ))
            })?),
            '%' => Token::AnyRun,
            '_' => Token::AnyChar,
            _ => Token::Literal(c),
        };
        tokens.push(token);
    }
    Ok(tokens)
}

/// Greedy matching that remembers the last `%` and, on a mismatch, lets it
/// swallow one more character instead of exploring every split.
fn matches_tokens(text: &[char], tokens: &[Token]) -> bool {
    let (mut t, mut p) = (0, 0);
    let mut last_run: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::AnyRun) => {
                last_run = Some((p, t));
                p += 1;
            }
            Some(Token::AnyChar) => (t, p) = (t + 1, p + 1),
            Some(Token::Literal(c)) if *c == text[t] => (t, p) = (t + 1, p + 1),
            _ => match last_run {
                Some((run_p, run_t)) => {
                    last_run = Some((run_p, run_t + 1));
                    (t, p) = (run_t + 1, run_p + 1);
                }
                None => return false,
            },
        }
    }
    tokens[p.min(tokens.len())..]
        .iter()
        .all(|token| *token == Token::AnyRun)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(text: &str, pattern: &str) -> bool {
        like_matches(text, pattern, Some('\\'), false).unwrap_or(false)
    }

    #[test]
    fn percent_and_underscore_are_wildcards() {
        assert!(like("hello", "h%o"));
        assert!(like("hello", "%"));
        assert!(like("", "%"));
        assert!(like("hello", "h_llo"));
        assert!(!like("hello", "h_lo"));
        assert!(like("abcabc", "%abc"));
        assert!(like("mississippi", "%iss%pi"));
        assert!(!like("abc", "ab"));
        assert!(!like("", "_"));
        assert!(like("héllo", "h_llo"));
    }

    #[test]
    fn escapes_make_wildcards_literal() {
        assert!(like("50%", "50\\%"));
        assert!(!like("500", "50\\%"));
        assert!(like("a_b", "a\\_b"));
        assert!(!like("axb", "a\\_b"));
        assert!(like("a\\b", "a\\\\b"));
        assert_eq!(like_matches("50%", "50!%", Some('!'), false), Ok(true));
        assert_eq!(like_matches("a\\b", "a\\b", None, false), Ok(true));
    }

    #[test]
    fn pattern_ending_in_escape_is_an_error() {
        assert!(like_matches("a", "a\\", Some('\\'), false).is_err());
    }

    #[test]
    fn ilike_ignores_case() {
        assert_eq!(like_matches("Hello", "h%O", Some('\\'), true), Ok(true));
        assert_eq!(like_matches("Hello", "h%O", Some('\\'), false), Ok(false));
    }

    #[test]
    fn adversarial_patterns_stay_fast() {
        let text = "a".repeat(5000);
        let pattern = format!("{}b", "%a".repeat(50));
        assert!(!like(&text, &pattern));
    }
}
