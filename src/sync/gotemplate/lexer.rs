//! Splits a template into text and action tokens, applying `{{-`/`-}}` trimming and dropping
//! `{{/* comments */}}` as Go's lexer does.

use std::fmt;

#[derive(Clone, PartialEq)]
pub(super) enum Tok {
    Text(String),
    Open,
    Close,
    Space,
    Pipe,
    LParen,
    RParen,
    Comma,
    Declare,
    Assign,
    Dot,
    /// `.name`, without the dot.
    Field(String),
    /// `$name` or `$`, with the dollar.
    Var(String),
    Ident(String),
    Str(String),
    Char(char),
    Number(String),
    Bool(bool),
    Nil,
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Text(_) => f.write_str("text"),
            Tok::Open => f.write_str("\"{{\""),
            Tok::Close => f.write_str("\"}}\""),
            Tok::Space => f.write_str("space"),
            Tok::Pipe => f.write_str("\"|\""),
            Tok::LParen => f.write_str("\"(\""),
            Tok::RParen => f.write_str("\")\""),
            Tok::Comma => f.write_str("\",\""),
            Tok::Declare => f.write_str("\":=\""),
            Tok::Assign => f.write_str("\"=\""),
            Tok::Dot => f.write_str("\".\""),
            Tok::Field(n) => write!(f, "\".{n}\""),
            Tok::Var(n) | Tok::Ident(n) | Tok::Number(n) => write!(f, "{n:?}"),
            Tok::Str(_) => f.write_str("string"),
            Tok::Char(_) => f.write_str("character constant"),
            Tok::Bool(b) => write!(f, "\"{b}\""),
            Tok::Nil => f.write_str("\"nil\""),
            Tok::Eof => f.write_str("end of template"),
        }
    }
}

pub(super) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

/// A lexing error at a byte offset.
pub(super) struct LexError {
    pub pos: usize,
    pub msg: String,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// `{{- ` opens with a left trim marker: a dash and one space character.
fn left_trim_at(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

/// ` -}}` at `s`: a space character, a dash and the closing delimiter.
fn right_trim_at(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 4 && is_space(b[0] as char) && &b[1..4] == b"-}}"
}

pub(super) fn lex(src: &str) -> Result<Vec<Token>, LexError> {
    let mut l = Lexer {
        src,
        i: 0,
        out: Vec::new(),
    };
    let mut trim_next = false;
    loop {
        let start = l.i;
        let end = src[start..].find("{{").map_or(src.len(), |r| start + r);
        let mut text = &src[start..end];
        if trim_next {
            text = text.trim_start_matches(is_space);
        }
        let left_trim = end < src.len() && left_trim_at(&src[end + 2..]);
        if left_trim {
            text = text.trim_end_matches(is_space);
        }
        if !text.is_empty() {
            l.push(Tok::Text(text.to_string()), start);
        }
        if end == src.len() {
            l.push(Tok::Eof, end);
            return Ok(l.out);
        }
        l.i = end + 2 + if left_trim { 2 } else { 0 };
        trim_next = if src[l.i..].starts_with("/*") {
            l.comment(end)?
        } else {
            if left_trim {
                l.i -= 1; // the space after the dash separates like any other space
            }
            l.push(Tok::Open, end);
            l.action()?
        };
    }
}

struct Lexer<'a> {
    src: &'a str,
    i: usize,
    out: Vec<Token>,
}

impl Lexer<'_> {
    fn push(&mut self, tok: Tok, pos: usize) {
        self.out.push(Token { tok, pos });
    }

    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> Result<T, LexError> {
        Err(LexError {
            pos,
            msg: msg.into(),
        })
    }

    fn peek(&self) -> Option<char> {
        self.src[self.i..].chars().next()
    }

    /// Skips a comment; returns whether it closed with a right trim marker.
    fn comment(&mut self, open: usize) -> Result<bool, LexError> {
        let Some(end) = self.src[self.i + 2..].find("*/") else {
            return self.err(open, "unclosed comment");
        };
        self.i += 2 + end + 2;
        let rest = &self.src[self.i..];
        if right_trim_at(rest) {
            self.i += 4;
            Ok(true)
        } else if rest.starts_with("}}") {
            self.i += 2;
            Ok(false)
        } else {
            self.err(open, "comment ends before closing delimiter")
        }
    }

    /// Lexes inside `{{ }}`; returns whether it closed with a right trim marker.
    fn action(&mut self) -> Result<bool, LexError> {
        let open = self.i;
        loop {
            let rest = &self.src[self.i..];
            let pos = self.i;
            if rest.starts_with("}}") {
                self.push(Tok::Close, pos);
                self.i += 2;
                return Ok(false);
            }
            if right_trim_at(rest) {
                self.push(Tok::Close, pos);
                self.i += 4;
                return Ok(true);
            }
            let Some(c) = self.peek() else {
                return self.err(open, "unclosed action");
            };
            let (tok, width) = match c {
                c if is_space(c) => {
                    while self.peek().is_some_and(is_space) && !right_trim_at(&self.src[self.i..]) {
                        self.i += 1;
                    }
                    (Tok::Space, None)
                }
                '|' => (Tok::Pipe, Some(1)),
                '(' => (Tok::LParen, Some(1)),
                ')' => (Tok::RParen, Some(1)),
                ',' => (Tok::Comma, Some(1)),
                '=' => (Tok::Assign, Some(1)),
                ':' if rest.starts_with(":=") => (Tok::Declare, Some(2)),
                ':' => return self.err(pos, "expected :="),
                '"' => (Tok::Str(self.quoted()?), None),
                '`' => {
                    let Some(end) = rest[1..].find('`') else {
                        return self.err(pos, "unterminated raw quoted string");
                    };
                    (Tok::Str(rest[1..end + 1].to_string()), Some(end + 2))
                }
                '\'' => (Tok::Char(self.char_const()?), None),
                '$' => {
                    let n = 1 + self.word_len(1);
                    (Tok::Var(rest[..n].to_string()), Some(n))
                }
                '.' if rest[1..].starts_with(|c: char| c.is_ascii_digit()) => (self.number(), None),
                '.' if rest[1..].starts_with(is_alnum) => {
                    let n = self.word_len(1);
                    (Tok::Field(rest[1..1 + n].to_string()), Some(1 + n))
                }
                '.' => (Tok::Dot, Some(1)),
                '+' | '-' | '0'..='9' => (self.number(), None),
                c if is_alnum(c) => {
                    let n = self.word_len(0);
                    let tok = match &rest[..n] {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        w => Tok::Ident(w.to_string()),
                    };
                    (tok, Some(n))
                }
                c => return self.err(pos, format!("unexpected {c:?} in action")),
            };
            if let Some(w) = width {
                self.i = pos + w;
            }
            self.push(tok, pos);
        }
    }

    /// Length of the identifier characters starting `skip` bytes after the cursor.
    fn word_len(&self, skip: usize) -> usize {
        self.src[self.i + skip..]
            .find(|c: char| !is_alnum(c))
            .unwrap_or(self.src.len() - self.i - skip)
    }

    fn number(&mut self) -> Tok {
        let start = self.i;
        let mut prev = '\0';
        for (k, c) in self.src[start..].char_indices() {
            let sign_ok = k == 0 || matches!(prev, 'e' | 'E' | 'p' | 'P');
            if !(is_alnum(c) || c == '.' || (matches!(c, '+' | '-') && sign_ok)) {
                break;
            }
            prev = c;
            self.i = start + k + c.len_utf8();
        }
        Tok::Number(self.src[start..self.i].to_string())
    }

    fn quoted(&mut self) -> Result<String, LexError> {
        let start = self.i;
        self.i += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None | Some('\n') => return self.err(start, "unterminated quoted string"),
                Some('"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some('\\') => out.push(self.escape(start, '"')?),
                Some(c) => {
                    out.push(c);
                    self.i += c.len_utf8();
                }
            }
        }
    }

    fn char_const(&mut self) -> Result<char, LexError> {
        let start = self.i;
        self.i += 1;
        let c = match self.peek() {
            Some('\\') => self.escape(start, '\'')?,
            Some(c) if c != '\'' && c != '\n' => {
                self.i += c.len_utf8();
                c
            }
            _ => return self.err(start, "malformed character constant"),
        };
        if self.peek() != Some('\'') {
            return self.err(start, "unterminated character constant");
        }
        self.i += 1;
        Ok(c)
    }

    /// Decodes one escape sequence (the cursor is on the backslash), as Go's strconv does.
    fn escape(&mut self, start: usize, quote: char) -> Result<char, LexError> {
        let rest = &self.src[self.i + 1..];
        let Some(c) = rest.chars().next() else {
            return self.err(start, "unterminated quoted string");
        };
        let (ch, len) = match c {
            'a' => ('\x07', 1),
            'b' => ('\x08', 1),
            'f' => ('\x0c', 1),
            'n' => ('\n', 1),
            'r' => ('\r', 1),
            't' => ('\t', 1),
            'v' => ('\x0b', 1),
            '\\' => ('\\', 1),
            c if c == quote => (c, 1),
            'x' | 'u' | 'U' | '0'..='7' => {
                let (digits, radix) = match c {
                    'x' => (2, 16),
                    'u' => (4, 16),
                    'U' => (8, 16),
                    _ => (3, 8),
                };
                let skip = usize::from(!c.is_ascii_digit());
                let code = rest
                    .get(skip..skip + digits)
                    .and_then(|d| u32::from_str_radix(d, radix).ok())
                    .and_then(char::from_u32);
                match code {
                    Some(ch) => (ch, skip + digits),
                    None => return self.err(start, "invalid escape in quoted string"),
                }
            }
            _ => return self.err(start, format!("unknown escape sequence \\{c}")),
        };
        self.i += 1 + len;
        Ok(ch)
    }
}
