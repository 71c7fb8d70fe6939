//! Parsing the text format of `COPY … TO STDOUT`, which carries the initial
//! snapshot of a table.
//!
//! Owns two steps: [`CopyLineSplitter`] cuts the byte stream, which arrives in
//! chunks of any size, into complete lines; [`parse_copy_line`] splits one line
//! into fields and undoes COPY's escaping. Only the defaults are supported:
//! tab delimiter, `\N` for NULL, no header. Turning a field into a typed value
//! is [`super::pg_text`]'s job.

use bytes::{Bytes, BytesMut};
use thiserror::Error;

const DELIMITER: u8 = b'\t';
const NULL_MARKER: &[u8] = b"\\N";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CopyError {
    #[error("COPY field {field} is not valid UTF-8 after unescaping")]
    InvalidUtf8 { field: usize },
    #[error("COPY field {field} ends in a lone backslash")]
    DanglingBackslash { field: usize },
    #[error("COPY data ended in the middle of a line ({bytes} bytes without a newline)")]
    IncompleteLine { bytes: usize },
}

/// Splits one line of COPY text output (without its newline) into fields:
/// `None` for NULL, otherwise the unescaped text.
///
/// A raw tab always separates fields, since COPY escapes a tab inside a value
/// as `\t`; a field is NULL only when it is exactly `\N` as sent (`\\N` is the
/// two-character text `\N`).
pub fn parse_copy_line(line: &[u8]) -> Result<Vec<Option<String>>, CopyError> {
    line.split(|&byte| byte == DELIMITER)
        .enumerate()
        .map(|(field, raw)| parse_field(field, raw))
        .collect()
}

fn parse_field(field: usize, raw: &[u8]) -> Result<Option<String>, CopyError> {
    if raw == NULL_MARKER {
        return Ok(None);
    }
    let unescaped = unescape(field, raw)?;
    String::from_utf8(unescaped)
        .map(Some)
        .map_err(|_| CopyError::InvalidUtf8 { field })
}

/// Undoes COPY's backslash escapes the way PostgreSQL's `COPY FROM` reads
/// them: the named control characters, `\` + 1–3 octal digits, `\x` + 1–2 hex
/// digits, and any other escaped character standing for itself. Octal and hex
/// escapes may produce any byte, so UTF-8 is checked only afterwards.
fn unescape(field: usize, raw: &[u8]) -> Result<Vec<u8>, CopyError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&byte, after)) = rest.split_first() {
        rest = after;
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        let (&escaped, after) = rest
            .split_first()
            .ok_or(CopyError::DanglingBackslash { field })?;
        rest = after;
        out.push(unescape_one(escaped, &mut rest));
    }
    Ok(out)
}

/// The byte an escape stands for, given the character after the backslash;
/// consumes the further digits of an octal or hex escape from `rest`.
fn unescape_one(escaped: u8, rest: &mut &[u8]) -> u8 {
    match escaped {
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'v' => 0x0b,
        b'0'..=b'7' => {
            let more = take_digits(rest, 2, 8);
            // PostgreSQL keeps the low 8 bits of values above \377.
            ((u32::from(escaped - b'0') << (3 * more.len())) + digits_value(more, 8)) as u8
        }
        b'x' => {
            let hex = take_digits(rest, 2, 16);
            if hex.is_empty() {
                b'x'
            } else {
                digits_value(hex, 16) as u8
            }
        }
        other => other,
    }
}

fn take_digits<'a>(rest: &mut &'a [u8], max: usize, radix: u32) -> &'a [u8] {
    let count = rest
        .iter()
        .take(max)
        .take_while(|b| char::from(**b).is_digit(radix))
        .count();
    let (digits, after) = rest.split_at(count);
    *rest = after;
    digits
}

fn digits_value(digits: &[u8], radix: u32) -> u32 {
    digits
        .iter()
        .filter_map(|b| char::from(*b).to_digit(radix))
        .fold(0, |acc, digit| acc * radix + digit)
}

/// Reassembles lines from COPY data chunks that may end anywhere, even inside
/// an escape sequence. Splitting on a raw newline is safe because COPY
/// escapes a newline inside a value as `\n`.
#[derive(Debug, Default)]
pub struct CopyLineSplitter {
    /// Bytes received but not yet returned as a line.
    pending: BytesMut,
    /// How much of `pending` is known to hold no newline, so a long line that
    /// arrives in many chunks is scanned once, not once per chunk.
    scanned: usize,
}

impl CopyLineSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a chunk as received from the server.
    pub fn push(&mut self, chunk: &[u8]) {
        self.pending.extend_from_slice(chunk);
    }

    /// The next complete line, without its newline, or `None` until more data
    /// arrives.
    pub fn next_line(&mut self) -> Option<Bytes> {
        let newline = self.pending[self.scanned..]
            .iter()
            .position(|&b| b == b'\n');
        let Some(offset) = newline else {
            self.scanned = self.pending.len();
            return None;
        };
        let mut line = self.pending.split_to(self.scanned + offset + 1);
        line.truncate(line.len() - 1);
        self.scanned = 0;
        Some(line.freeze())
    }

    /// Declares the end of the data: an unterminated last line is an error,
    /// since COPY ends every row with a newline.
    pub fn finish(self) -> Result<(), CopyError> {
        match self.pending.len() {
            0 => Ok(()),
            bytes => Err(CopyError::IncompleteLine { bytes }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(values: &[Option<&str>]) -> Vec<Option<String>> {
        values.iter().map(|v| v.map(str::to_owned)).collect()
    }

    #[test]
    fn splits_on_tabs_and_reads_nulls() {
        let row = parse_copy_line(b"1\t\\N\thello\t").unwrap();
        assert_eq!(row, fields(&[Some("1"), None, Some("hello"), Some("")]));
        assert_eq!(parse_copy_line(b"").unwrap(), fields(&[Some("")]));
    }

    #[test]
    fn unescapes_embedded_tab_newline_and_backslash() {
        let row = parse_copy_line(b"a\\tb\tline1\\nline2\tC:\\\\dir\t\\\\N").unwrap();
        assert_eq!(
            row,
            fields(&[
                Some("a\tb"),
                Some("line1\nline2"),
                Some("C:\\dir"),
                Some("\\N")
            ])
        );
    }

    #[test]
    fn unescapes_control_characters() {
        let row = parse_copy_line(b"\\b\\f\\r\\v\\q").unwrap();
        assert_eq!(row, fields(&[Some("\u{8}\u{c}\r\u{b}q")]));
    }

    #[test]
    fn unescapes_octal_and_hex_into_utf8() {
        // "é" is C3 A9 in UTF-8.
        assert_eq!(
            parse_copy_line(b"\\303\\251").unwrap(),
            fields(&[Some("é")])
        );
        assert_eq!(
            parse_copy_line(b"\\xc3\\xA9").unwrap(),
            fields(&[Some("é")])
        );
        assert_eq!(parse_copy_line(b"\\0618").unwrap(), fields(&[Some("18")]));
        assert_eq!(
            parse_copy_line(b"\\x4g").unwrap(),
            fields(&[Some("\u{4}g")])
        );
        assert_eq!(parse_copy_line(b"\\xg").unwrap(), fields(&[Some("xg")]));
        assert_eq!(parse_copy_line(b"\\9").unwrap(), fields(&[Some("9")]));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        assert_eq!(
            parse_copy_line(b"ok\t\xff"),
            Err(CopyError::InvalidUtf8 { field: 1 })
        );
        assert_eq!(
            parse_copy_line(b"\\377"),
            Err(CopyError::InvalidUtf8 { field: 0 })
        );
    }

    #[test]
    fn lone_trailing_backslash_is_an_error() {
        assert_eq!(
            parse_copy_line(b"a\tb\\"),
            Err(CopyError::DanglingBackslash { field: 1 })
        );
    }

    #[test]
    fn every_prefix_of_an_escaped_line_parses_or_errors() {
        let line = br"\\N\t\0618\x4g\303\251\xC3\xA9\\\N";
        for end in 0..=line.len() {
            let _ = parse_copy_line(&line[..end]);
        }
        let whole = parse_copy_line(line).unwrap();
        assert_eq!(whole, fields(&[Some("\\N\t18\u{4}géé\\N")]));
    }

    fn lines_of(splitter: &mut CopyLineSplitter) -> Vec<Bytes> {
        std::iter::from_fn(|| splitter.next_line()).collect()
    }

    #[test]
    fn reassembles_lines_split_across_chunks() {
        let mut splitter = CopyLineSplitter::new();
        splitter.push(b"1\tfir");
        assert!(lines_of(&mut splitter).is_empty());
        splitter.push(b"st\n2\tsec");
        assert_eq!(
            lines_of(&mut splitter),
            vec![Bytes::from_static(b"1\tfirst")]
        );
        splitter.push(b"ond\n3\tthird\n");
        assert_eq!(
            lines_of(&mut splitter),
            vec![
                Bytes::from_static(b"2\tsecond"),
                Bytes::from_static(b"3\tthird")
            ]
        );
        assert_eq!(splitter.finish(), Ok(()));
    }

    #[test]
    fn chunk_boundary_inside_an_escape() {
        let data = b"1\tsay \\\"hi\\\"\\tthen\\\\\\nbye\\303\\251\t\\N\n";
        for cut in 0..=data.len() {
            let mut splitter = CopyLineSplitter::new();
            splitter.push(&data[..cut]);
            let mut lines = lines_of(&mut splitter);
            splitter.push(&data[cut..]);
            lines.extend(lines_of(&mut splitter));
            assert_eq!(lines.len(), 1, "cut at {cut}");
            let row = parse_copy_line(&lines[0]).unwrap();
            assert_eq!(
                row,
                fields(&[Some("1"), Some("say \"hi\"\tthen\\\nbyeé"), None])
            );
            assert_eq!(splitter.finish(), Ok(()));
        }
    }

    #[test]
    fn byte_at_a_time_matches_one_chunk() {
        let data = b"a\tb\n\nc\\td\n";
        let mut splitter = CopyLineSplitter::new();
        let mut lines = Vec::new();
        for byte in data {
            splitter.push(std::slice::from_ref(byte));
            lines.extend(lines_of(&mut splitter));
        }
        let expected = [&b"a\tb"[..], b"", b"c\\td"].map(Bytes::from_static);
        assert_eq!(lines, expected);
    }

    #[test]
    fn unterminated_last_line_is_reported() {
        let mut splitter = CopyLineSplitter::new();
        splitter.push(b"1\t2\n3\t");
        assert_eq!(lines_of(&mut splitter).len(), 1);
        assert_eq!(
            splitter.finish(),
            Err(CopyError::IncompleteLine { bytes: 2 })
        );
    }
}
