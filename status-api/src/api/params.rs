//! Query parameter types whose schema states what the server enforces: a filter text of bounded length, so
//! `/openapi.json` says `minLength`/`maxLength` for each repeated `label` and `name` value, and a generated
//! client (or a fuzzer) never sends what the server would refuse.

use std::borrow::Cow;
use std::marker::PhantomData;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromParameter, ParseResult, ToJSON, Type};
use serde_json::Value;

/// What one kind of filter text allows, stated in the schema and checked on parse.
pub(super) trait TextRule: Send + Sync + 'static {
    /// The schema's name for the type.
    const NAME: &'static str;
    /// The most characters.
    const MAX: usize;
    /// A regular expression every value matches (ECMA-262 and Python `re` read it the same way).
    const PATTERN: Option<&'static str> = None;
    /// What `/docs` puts in a new item of the list ("Add item"), and generated clients show.
    const EXAMPLE: &'static str;
}

/// `label=KEY` or `label=KEY=VALUE`: the key non-empty, without `=`, white space or control characters (the
/// characters Rust calls whitespace or control, listed), the value anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LabelRule;

impl TextRule for LabelRule {
    const NAME: &'static str = "label_selector";
    const MAX: usize = super::filter::MAX_LABEL;
    const EXAMPLE: &'static str = "team=web";
    const PATTERN: Option<&'static str> = Some(
        "^[^=\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]+(=[\\s\\S]*)?$",
    );
}

/// `name=REGEX`: a regular expression in RE2 syntax (Rust's `regex`, as Docker's Go `regexp`), as
/// `docker ps --filter name=` takes. A plain string in the schema: JSON Schema's `format: regex` means
/// ECMA-262, which allows what RE2 refuses (look-around, back-references).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NameRule;

impl TextRule for NameRule {
    const NAME: &'static str = "name_pattern";
    const MAX: usize = super::filter::MAX_NAME_PATTERN;
    const EXAMPLE: &'static str = "^web-";
}

/// A non-empty query value of at most `R::MAX` characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FilterText<R>(pub String, PhantomData<R>);

impl<R: TextRule> Type for FilterText<R> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        R::NAME.into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            min_length: Some(1),
            max_length: Some(R::MAX),
            pattern: R::PATTERN.map(ToOwned::to_owned),
            example: Some(Value::String(R::EXAMPLE.to_owned())),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl<R: TextRule> ParseFromParameter for FilterText<R> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        let length = value.chars().count();
        if length == 0 {
            return Err(ParseError::custom("it is empty"));
        }
        if length > R::MAX {
            return Err(ParseError::custom(format!(
                "it is {length} characters long, more than {}",
                R::MAX
            )));
        }
        Ok(Self(value.to_owned(), PhantomData))
    }
}

impl<R: TextRule> ToJSON for FilterText<R> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// A container's name (or id) in a path: at most [`MAX_PATH_NAME`] characters in the schema, so that every
/// path the document allows fits the request line. Never refused when parsed: a longer one names no container,
/// and the operation answers 404 as for any other name it does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ContainerName(pub String);

/// The longest name the schema states (characters); 12 bytes each when percent-encoded, 12 KiB in all.
pub(super) const MAX_PATH_NAME: usize = 1024;

impl Type for ContainerName {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "container_name".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            max_length: Some(MAX_PATH_NAME),
            example: Some(Value::String("web".to_owned())),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ParseFromParameter for ContainerName {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(Self(value.to_owned()))
    }
}

impl ToJSON for ContainerName {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// The texts of a repeated filter parameter.
pub(super) fn texts<R>(values: Option<Vec<FilterText<R>>>) -> Vec<String> {
    values
        .unwrap_or_default()
        .into_iter()
        .map(|text| text.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_overlong_values_are_refused_and_the_schema_says_so() {
        assert!(FilterText::<NameRule>::parse_from_parameter("").is_err());
        assert!(FilterText::<NameRule>::parse_from_parameter(&"a".repeat(65)).is_err());
        assert!(FilterText::<NameRule>::parse_from_parameter(&"é".repeat(64)).is_ok());
        assert_eq!(
            FilterText::<NameRule>::parse_from_parameter("^web")
                .map(|t| t.0)
                .ok(),
            Some("^web".to_owned())
        );
        let MetaSchemaRef::Inline(schema) = FilterText::<NameRule>::schema_ref() else {
            panic!("inline schema")
        };
        assert_eq!((schema.min_length, schema.max_length), (Some(1), Some(64)));
        assert_eq!(schema.format, None, "RE2 is not ECMA-262's `regex`");
        assert_eq!(schema.example, Some(Value::String("^web-".to_owned())));
    }

    #[test]
    fn the_label_pattern_says_what_the_selector_parser_takes() {
        let MetaSchemaRef::Inline(schema) = FilterText::<LabelRule>::schema_ref() else {
            panic!("inline schema")
        };
        let pattern =
            regex::Regex::new(schema.pattern.as_deref().expect("a pattern")).expect("valid");
        for text in [
            "app",
            "app=web",
            "a=",
            "a==b",
            "k=v w",
            "é=ü",
            "k=\n",
            "team.io/x=1",
            "",
            "=v",
            " k",
            "k k=v",
            "k\u{3000}=v",
            "\u{7f}",
            "k\u{a0}",
            "\t=x",
        ] {
            assert_eq!(
                pattern.is_match(text),
                text.parse::<shared::LabelSelector>().is_ok(),
                "{text:?}"
            );
        }
    }
}
