//! Proto comments → rustdoc lines.
//!
//! A proto comment is prose written for humans, not Markdown written for rustdoc. Passed
//! through unchanged it breaks in three ways: `[foo]` becomes an intra-doc link that does not
//! resolve, `<tag>` becomes an unclosed HTML tag, and an indented block becomes a code block that
//! rustdoc compiles as a Rust doctest. [`doc_lines`] neutralises each:
//!
//! - backslash, `[`, `]` and `<` are backslash-escaped (a CommonMark escape, so the rendered
//!   text is exactly what the author wrote); balanced backtick code spans are kept verbatim;
//!   an unbalanced backtick is escaped;
//! - bare `http://` / `https://` URLs become autolinks (`<https://…>`), which keeps the
//!   `rustdoc::bare_urls` lint quiet;
//! - an indented block (four columns or more, after removing the comment's common indent) that
//!   starts a block is wrapped in a ```` ```text ```` fence; an indented line that continues a
//!   paragraph is un-indented (Markdown renders it the same way);
//! - a fence the author wrote keeps its contents verbatim but is re-labelled `text`, so no
//!   proto comment ever becomes a doctest; a fence left open is closed.

/// Width of a tab when measuring indentation.
const TAB_WIDTH: usize = 4;
/// Indentation at which Markdown starts an indented code block.
const CODE_INDENT: usize = 4;

/// Rustdoc lines for a proto comment, each ready to go into `#[doc = "…"]` (non-empty lines
/// carry the conventional leading space). Returns no lines for a blank comment.
pub(crate) fn doc_lines(comment: &str) -> Vec<String> {
    let lines = normalise(comment);
    let mut out = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        let indent = indent_width(line);
        if line.trim().is_empty() {
            out.push(String::new());
            i += 1;
        } else if let Some(fence) = (indent < CODE_INDENT)
            .then(|| Fence::open(line.trim_start()))
            .flatten()
        {
            i = copy_fenced(&lines, i + 1, fence, &mut out);
        } else if indent >= CODE_INDENT && starts_block(&out) {
            i = wrap_indented(&lines, i, &mut out);
        } else {
            let text = if indent >= CODE_INDENT {
                line.trim_start()
            } else {
                line.as_str()
            };
            out.push(format!(" {}", escape_inline(text)));
            i += 1;
        }
    }
    out
}

/// Splits into lines, expands leading tabs, removes the common indentation and surrounding
/// blank lines, trims line ends.
fn normalise(comment: &str) -> Vec<String> {
    let expanded: Vec<String> = comment
        .lines()
        .map(|l| expand_leading_tabs(l.trim_end()))
        .collect();
    let common = expanded
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| indent_width(l))
        .min()
        .unwrap_or(0);
    let mut lines: Vec<String> = expanded
        .into_iter()
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                l[common..].to_string()
            }
        })
        .collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let first = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    lines.drain(..first);
    lines
}

fn expand_leading_tabs(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut width = 0;
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        match c {
            ' ' => width += 1,
            '\t' => width += TAB_WIDTH - width % TAB_WIDTH,
            _ => break,
        }
        rest = &rest[1..];
    }
    out.extend(std::iter::repeat_n(' ', width));
    out.push_str(rest);
    out
}

/// Leading spaces (tabs are already expanded).
fn indent_width(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Whether the next line starts a new Markdown block (rather than continuing a paragraph).
fn starts_block(out: &[String]) -> bool {
    out.last().is_none_or(String::is_empty)
}

/// A fence the author opened: its character and length.
#[derive(Clone, Copy)]
struct Fence {
    marker: char,
    len: usize,
}

impl Fence {
    /// Recognises ```` ``` ```` or `~~~` (three or more) at the start of `line`.
    fn open(line: &str) -> Option<Fence> {
        let marker = line.chars().next().filter(|c| *c == '`' || *c == '~')?;
        let len = line.chars().take_while(|c| *c == marker).count();
        // A backtick fence's info string may not contain a backtick.
        let info_ok = marker == '~' || !line[len..].contains('`');
        (len >= 3 && info_ok).then_some(Fence { marker, len })
    }

    fn closes(self, line: &str) -> bool {
        let trimmed = line.trim();
        let run = trimmed.chars().take_while(|c| *c == self.marker).count();
        run >= self.len && run == trimmed.chars().count()
    }

    fn render(self) -> String {
        std::iter::repeat_n(self.marker, self.len).collect()
    }
}

/// Copies an author's fenced block (opening line already consumed) as a `text` block and
/// returns the index after it.
fn copy_fenced(lines: &[String], mut i: usize, fence: Fence, out: &mut Vec<String>) -> usize {
    out.push(format!(" {}text", fence.render()));
    while i < lines.len() {
        if fence.closes(&lines[i]) {
            i += 1;
            break;
        }
        out.push(code_line(&lines[i]));
        i += 1;
    }
    out.push(format!(" {}", fence.render()));
    i
}

/// Wraps the indented block starting at `start` in a `text` fence and returns the index after it.
fn wrap_indented(lines: &[String], start: usize, out: &mut Vec<String>) -> usize {
    let mut end = start;
    let mut last_content = start;
    while end < lines.len() && (lines[end].is_empty() || indent_width(&lines[end]) >= CODE_INDENT) {
        if !lines[end].is_empty() {
            last_content = end;
        }
        end += 1;
    }
    let block: Vec<&str> = lines[start..=last_content]
        .iter()
        .map(|l| l.get(CODE_INDENT..).unwrap_or(""))
        .collect();
    // The fence must be longer than any backtick run that starts a line of the block.
    let longest = block
        .iter()
        .map(|l| l.trim_start().chars().take_while(|c| *c == '`').count())
        .max()
        .unwrap_or(0);
    let fence: String = std::iter::repeat_n('`', longest.max(2) + 1).collect();
    out.push(format!(" {fence}text"));
    out.extend(block.iter().map(|l| code_line(l)));
    out.push(format!(" {fence}"));
    last_content + 1
}

fn code_line(line: &str) -> String {
    if line.is_empty() {
        String::new()
    } else {
        format!(" {line}")
    }
}

/// Escapes one line of prose; see the module docs for the rules.
fn escape_inline(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if c == '`' {
            let run = rest.chars().take_while(|c| *c == '`').count();
            match closing_backticks(&rest[run..], run) {
                Some(close) => {
                    let span_len = run + close + run;
                    out.push_str(&rest[..span_len]);
                    rest = &rest[span_len..];
                }
                None => {
                    for _ in 0..run {
                        out.push_str("\\`");
                    }
                    rest = &rest[run..];
                }
            }
            continue;
        }
        if let Some(url_len) = bare_url_len(rest) {
            out.push('<');
            out.push_str(&rest[..url_len]);
            out.push('>');
            rest = &rest[url_len..];
            continue;
        }
        if matches!(c, '\\' | '[' | ']' | '<') {
            out.push('\\');
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Offset of a backtick run of exactly `run` backticks in `s`, if any.
fn closing_backticks(s: &str, run: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            let len = bytes[i..].iter().take_while(|b| **b == b'`').count();
            if len == run {
                return Some(i);
            }
            i += len;
        } else {
            i += 1;
        }
    }
    None
}

/// Length of a bare `http(s)://` URL at the start of `s`, without trailing punctuation.
fn bare_url_len(s: &str) -> Option<usize> {
    let scheme = ["https://", "http://"]
        .into_iter()
        .find(|p| s.starts_with(p))?;
    let end = s
        .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '`'))
        .unwrap_or(s.len());
    let url = s[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '\'', ']']);
    (url.len() > scheme.len()).then_some(url.len())
}

#[cfg(test)]
mod tests {
    use super::doc_lines;

    fn doc(s: &str) -> String {
        doc_lines(s).join("\n")
    }

    #[test]
    fn prose_is_escaped() {
        assert_eq!(
            doc(" See [foo] and <b>bold</b>.\n"),
            r" See \[foo\] and \<b>bold\</b>."
        );
        assert_eq!(doc(r" a \ b"), r" a \\ b");
    }

    #[test]
    fn code_spans_are_verbatim() {
        assert_eq!(doc(" Use `a[0] < b` here"), " Use `a[0] < b` here");
        assert_eq!(doc(" Use ``x ` y`` here"), " Use ``x ` y`` here");
        assert_eq!(doc(" odd ` tick [x]"), r" odd \` tick \[x\]");
    }

    #[test]
    fn urls_become_autolinks() {
        assert_eq!(
            doc(" See https://connectrpc.com/docs."),
            " See <https://connectrpc.com/docs>."
        );
        assert_eq!(doc(" (http://a.b/c)"), " (<http://a.b/c>)");
        assert_eq!(doc(" http:// alone"), " http:// alone");
    }

    #[test]
    fn common_indent_and_blank_edges_are_removed() {
        assert_eq!(doc("\n\n   one\n   two\n\n"), " one\n two");
    }

    #[test]
    fn indented_block_is_fenced_as_text() {
        let got = doc(" Example:\n\n     let x = [1];\n\n     y();\n\n After.");
        assert_eq!(
            got,
            " Example:\n\n ```text\n let x = [1];\n\n y();\n ```\n\n After."
        );
    }

    #[test]
    fn indented_continuation_is_unindented() {
        assert_eq!(doc(" Text\n     more [x]"), " Text\n more \\[x\\]");
    }

    #[test]
    fn author_fences_become_text_and_are_closed() {
        assert_eq!(
            doc(" ```rust\n fn x() {}\n ```\n after"),
            " ```text\n fn x() {}\n ```\n after"
        );
        assert_eq!(doc(" ~~~~\n [a]"), " ~~~~text\n [a]\n ~~~~");
    }

    #[test]
    fn tabs_count_as_indentation() {
        assert_eq!(doc("x\n\n\tcode"), " x\n\n ```text\n code\n ```");
    }

    #[test]
    fn blank_comment_has_no_lines() {
        assert!(doc_lines("  \n \n").is_empty());
    }
}
