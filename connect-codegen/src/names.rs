//! Rust names for proto services and methods: case conversion, keyword escaping and
//! deconfliction.
//!
//! Keyword escaping follows the convention buffa uses for its own items
//! ([`buffa_codegen::idents`]): a raw identifier (`r#match`) wherever Rust allows one, a `_`
//! suffix (`self_`) for the four keywords that cannot be raw (`self`, `Self`, `super`, `crate`).

use std::collections::BTreeSet;

use buffa_codegen::idents::is_rust_keyword;

/// Keywords that cannot be written as raw identifiers.
const NOT_RAW: &[&str] = &["self", "Self", "super", "crate", "_"];

/// The identifier text for `name`: unchanged, raw (`r#type`) or suffixed (`self_`).
pub(crate) fn escape_ident(name: &str) -> String {
    if NOT_RAW.contains(&name) {
        format!("{name}_")
    } else if is_rust_keyword(name) {
        format!("r#{name}")
    } else {
        name.to_string()
    }
}

/// `snake_case` of a proto identifier: a word starts at a lower→upper or digit→upper
/// transition and at the last capital of an acronym (`HTTPServer` → `http_server`);
/// underscores the author wrote are kept.
pub(crate) fn to_snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            let starts_word = match prev {
                None | Some('_') => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) => p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()),
            };
            if starts_word {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `UpperCamelCase` of a proto identifier, for type names: underscores go and the letter after
/// each one is capitalised, like the first letter; other letters are kept
/// (`my_service` → `MyService`, `HTTPServer` stays). A name that is all underscores stays.
pub(crate) fn to_upper_camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut capitalise = true;
    for c in name.chars() {
        if c == '_' {
            capitalise = true;
        } else if capitalise {
            out.push(c.to_ascii_uppercase());
            capitalise = false;
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        name.to_string()
    } else {
        out
    }
}

/// `SHOUTY_SNAKE_CASE` of a proto identifier, for constants.
pub(crate) fn to_shouty_snake_case(name: &str) -> String {
    to_snake_case(name).to_ascii_uppercase()
}

/// Hands out names that are unique within one scope.
///
/// A candidate that is taken gets `_` appended until it is free. Callers that care about
/// stability feed candidates in a sorted order, so the result does not depend on declaration
/// order.
#[derive(Debug, Default)]
pub(crate) struct Namespace {
    taken: BTreeSet<String>,
}

impl Namespace {
    /// A scope in which `reserved` names are already taken.
    pub(crate) fn with_reserved<I, S>(reserved: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Namespace {
            taken: reserved.into_iter().map(Into::into).collect(),
        }
    }

    /// Claims the identifier for `base` (keyword-escaped), or for the first of `base_`,
    /// `base__`, … whose identifier is free, and returns that identifier.
    pub(crate) fn claim(&mut self, base: &str) -> String {
        let mut base = base.to_string();
        loop {
            let ident = escape_ident(&base);
            if self.taken.insert(ident.clone()) {
                return ident;
            }
            base.push('_');
        }
    }
}

/// A `::`-separated Rust path with every segment that is a keyword written as a raw
/// identifier, the way buffa writes paths (`super::type::Money` → `super::r#type::Money`).
/// Path keywords (`super`, `self`, `crate`, `Self`) stay as they are.
pub(crate) fn escape_path(path: &str) -> String {
    path.split("::")
        .map(|segment| {
            if is_rust_keyword(segment) && !NOT_RAW.contains(&segment) {
                format!("r#{segment}")
            } else {
                segment.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("::")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case() {
        assert_eq!(to_snake_case("SayHello"), "say_hello");
        assert_eq!(to_snake_case("HTTPServer"), "http_server");
        assert_eq!(to_snake_case("GetV2Thing"), "get_v2_thing");
        assert_eq!(to_snake_case("already_snake"), "already_snake");
        assert_eq!(to_snake_case("Self_"), "self_");
        assert_eq!(to_snake_case("A"), "a");
        assert_eq!(to_snake_case("ABC"), "abc");
        assert_eq!(to_snake_case("Foo_Bar"), "foo_bar");
    }

    #[test]
    fn upper_camel_case() {
        assert_eq!(to_upper_camel_case("Greeter"), "Greeter");
        assert_eq!(to_upper_camel_case("my_service"), "MyService");
        assert_eq!(to_upper_camel_case("HTTPServer"), "HTTPServer");
        assert_eq!(to_upper_camel_case("Self_"), "Self");
        assert_eq!(to_upper_camel_case("v2_api"), "V2Api");
        assert_eq!(to_upper_camel_case("_"), "_");
    }

    #[test]
    fn shouty() {
        assert_eq!(to_shouty_snake_case("SayHello"), "SAY_HELLO");
        assert_eq!(to_shouty_snake_case("ServiceName"), "SERVICE_NAME");
        assert_eq!(to_shouty_snake_case("Self"), "SELF");
    }

    #[test]
    fn keyword_escaping() {
        assert_eq!(escape_ident("type"), "r#type");
        assert_eq!(escape_ident("match"), "r#match");
        assert_eq!(escape_ident("async"), "r#async");
        assert_eq!(escape_ident("gen"), "r#gen");
        assert_eq!(escape_ident("self"), "self_");
        assert_eq!(escape_ident("Self"), "Self_");
        assert_eq!(escape_ident("crate"), "crate_");
        assert_eq!(escape_ident("super"), "super_");
        assert_eq!(escape_ident("Type"), "Type");
        assert_eq!(escape_ident("greeter"), "greeter");
    }

    #[test]
    fn namespace_suffixes_until_free() {
        let mut ns = Namespace::with_reserved(["inner", "inner_", "r#type"]);
        assert_eq!(ns.claim("inner"), "inner__");
        assert_eq!(ns.claim("inner"), "inner___");
        assert_eq!(ns.claim("other"), "other");
        assert_eq!(ns.claim("type"), "type_");
        assert_eq!(ns.claim("self"), "self_");
        assert_eq!(ns.claim("self_"), "self__");
    }

    #[test]
    fn paths_escape_keywords_like_buffa() {
        assert_eq!(escape_path("super::type::Money"), "super::r#type::Money");
        assert_eq!(
            escape_path("::buffa_types::google::protobuf::Empty"),
            "::buffa_types::google::protobuf::Empty"
        );
        assert_eq!(
            escape_path("super::super::match::r#x"),
            "super::super::r#match::r#x"
        );
    }
}
