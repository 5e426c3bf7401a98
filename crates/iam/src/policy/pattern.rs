//! Precompiled string patterns: literal text, `*`/`?` wildcards and policy variables.
//!
//! One representation serves actions, resources and string-like condition values. A pattern
//! is compiled once into tokens; matching walks the tokens against the request's text without
//! allocating, looking policy variables up in the [`Context`] as it meets them.
//!
//! Policy variables (`${aws:username}`, `${aws:PrincipalTag/team, 'default'}`) follow AWS:
//! - the value substituted is literal text (a `*` in a user name is not a wildcard);
//! - a key that is absent, empty or multi-valued has no value; the default, if given, is used
//!   instead, otherwise the pattern matches nothing;
//! - `${*}`, `${?}` and `${$}` are the literal characters `*`, `?` and `$`;
//! - substitution is a single pass (a variable's value is never parsed again).
//!
//! Variables are recognised only when the caller asks for them (documents of Version
//! 2012-10-17): under 2008-10-17, `${aws:username}` is plain text, as in AWS.

use super::Context;

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// Text that must appear as it is.
    Lit(String),
    /// A policy variable: the context key (lower-cased) and the default text.
    Var { key: String, default: Option<String> },
    /// Any run of characters, possibly empty.
    Star,
    /// Exactly one character.
    One,
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pattern {
    toks: Vec<Tok>,
}

impl Pattern {
    /// Compiles `src`. With `wildcards`, `*` and `?` are wildcards (otherwise literal); with
    /// `variables`, `${…}` is a policy variable. The error is a message for [`PolicyError`].
    ///
    /// [`PolicyError`]: super::PolicyError
    pub(super) fn compile(src: &str, wildcards: bool, variables: bool) -> Result<Pattern, String> {
        let mut toks = Vec::new();
        let mut lit = String::new();
        let mut rest = src;
        while let Some(c) = rest.chars().next() {
            if variables && rest.starts_with("${") {
                let (tok, used) = variable(&rest[2..]).map_err(|why| format!("{src:?}: {why}"))?;
                match tok {
                    Tok::Lit(text) => lit.push_str(&text),
                    var => {
                        flush(&mut lit, &mut toks);
                        toks.push(var);
                    }
                }
                rest = &rest[2 + used..];
                continue;
            }
            rest = &rest[c.len_utf8()..];
            match c {
                // Consecutive stars mean the same as one; merging them keeps matching linear.
                '*' if wildcards => {
                    flush(&mut lit, &mut toks);
                    if toks.last() != Some(&Tok::Star) {
                        toks.push(Tok::Star);
                    }
                }
                '?' if wildcards => {
                    flush(&mut lit, &mut toks);
                    toks.push(Tok::One);
                }
                _ => lit.push(c),
            }
        }
        flush(&mut lit, &mut toks);
        Ok(Pattern { toks })
    }

    /// Whether the pattern contains a policy variable.
    pub(super) fn has_variables(&self) -> bool {
        self.toks.iter().any(|t| matches!(t, Tok::Var { .. }))
    }

    /// Whether `text` matches. With `ascii_fold`, ASCII letters compare case-insensitively
    /// (actions: AWS's service and action names are ASCII and case-insensitive).
    pub(super) fn matches(&self, text: &str, ctx: &Context, ascii_fold: bool) -> bool {
        let toks = &self.toks;
        let (mut ti, mut pos) = (0, 0);
        // Where to resume after the last star: the token after it, and the text position the
        // star's run currently ends at. Backtracking to the last star only is complete for
        // `*`/`?` patterns: any extension an earlier star could make, the last one can absorb.
        let mut resume: Option<(usize, usize)> = None;
        loop {
            if let Some(tok) = toks.get(ti) {
                let rest = &text[pos..];
                match tok {
                    Tok::Star => {
                        resume = Some((ti + 1, pos));
                        ti += 1;
                        continue;
                    }
                    Tok::One => {
                        if let Some(c) = rest.chars().next() {
                            pos += c.len_utf8();
                            ti += 1;
                            continue;
                        }
                    }
                    _ => {
                        // Every full match goes through this token, so an unresolvable
                        // variable means no match at all.
                        let Some(want) = resolve(tok, ctx) else { return false };
                        if has_prefix(rest, want, ascii_fold) {
                            pos += want.len();
                            ti += 1;
                            continue;
                        }
                    }
                }
            } else if pos == text.len() || toks.last() == Some(&Tok::Star) {
                return true;
            }
            match resume {
                Some((after, at)) if at < text.len() => {
                    let step = text[at..].chars().next().map_or(1, char::len_utf8);
                    resume = Some((after, at + step));
                    (ti, pos) = (after, at + step);
                }
                _ => return false,
            }
        }
    }

    /// Whether `text` equals the pattern (compiled without wildcards) ignoring case, with
    /// Unicode lower-casing on both sides (`StringEqualsIgnoreCase`).
    pub(super) fn eq_ignore_case(&self, text: &str, ctx: &Context) -> bool {
        if !self.toks.iter().all(|t| resolve(t, ctx).is_some()) {
            return false;
        }
        let pattern = self.toks.iter().flat_map(|t| resolve(t, ctx).unwrap_or_default().chars());
        pattern.flat_map(char::to_lowercase).eq(text.chars().flat_map(char::to_lowercase))
    }
}

/// The text a literal or variable token stands for in `ctx`.
fn resolve<'a>(tok: &'a Tok, ctx: &'a Context) -> Option<&'a str> {
    match tok {
        Tok::Lit(text) => Some(text),
        Tok::Var { key, default } => ctx.single(key).or(default.as_deref()),
        Tok::Star | Tok::One => None,
    }
}

fn has_prefix(text: &str, prefix: &str, ascii_fold: bool) -> bool {
    if ascii_fold {
        // Byte-wise: non-ASCII bytes compare exactly, so a match ends on a char boundary.
        text.len() >= prefix.len() && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    } else {
        text.starts_with(prefix)
    }
}

fn flush(lit: &mut String, toks: &mut Vec<Tok>) {
    if !lit.is_empty() {
        toks.push(Tok::Lit(std::mem::take(lit)));
    }
}

/// Parses a variable after its `${`: `key}`, `key, 'default'}` or an escape (`*}`, `?}`,
/// `$}`). Returns the token (a literal for escapes) and the number of bytes consumed,
/// closing brace included.
fn variable(body: &str) -> Result<(Tok, usize), &'static str> {
    const UNTERMINATED: &str = "unterminated policy variable: \"${\" needs a closing \"}\"";
    let end = body.find([',', '}']).ok_or(UNTERMINATED)?;
    let key = body[..end].trim();
    if body.as_bytes()[end] == b'}' {
        if let "*" | "?" | "$" = key {
            return Ok((Tok::Lit(key.to_owned()), end + 1));
        }
        return Ok((var_token(key, None)?, end + 1));
    }
    // A default value: `, 'text'` where `''` stands for one quote, then `}`.
    let after_comma = &body[end + 1..];
    let quoted = after_comma.trim_start();
    let mut at = end + 1 + (after_comma.len() - quoted.len());
    let mut chars = quoted.char_indices();
    if chars.next().map(|(_, c)| c) != Some('\'') {
        return Err("a policy variable's default must be in single quotes: ${key, 'default'}");
    }
    let mut default = String::new();
    let mut close = None;
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if quoted[i + 1..].starts_with('\'') {
                default.push('\'');
                chars.next();
                continue;
            }
            close = Some(i + 1);
            break;
        }
        default.push(c);
    }
    let close = close.ok_or("unterminated default value in a policy variable")?;
    at += close;
    let tail = &body[at..];
    let trimmed = tail.trim_start();
    if !trimmed.starts_with('}') {
        return Err("a policy variable's default value must be followed by \"}\"");
    }
    at += tail.len() - trimmed.len() + 1;
    Ok((var_token(key, Some(default))?, at))
}

fn var_token(key: &str, default: Option<String>) -> Result<Tok, &'static str> {
    if key.is_empty() {
        return Err("empty policy variable \"${}\"");
    }
    if key.chars().any(char::is_whitespace) {
        return Err("a policy variable's key cannot contain white space");
    }
    Ok(Tok::Var { key: key.to_lowercase(), default })
}
