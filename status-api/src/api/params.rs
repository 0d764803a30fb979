//! Query parameter types whose schema states what the server enforces: a filter text of bounded length, so
//! `/openapi.json` says `minLength`/`maxLength` for each repeated `label` and `name` value, and a generated
//! client (or a fuzzer) never sends what the server would refuse.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromParameter, ParseResult, ToJSON, Type};
use serde_json::Value;

/// A non-empty query value of at most `MAX` characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FilterText<const MAX: usize>(pub String);

impl<const MAX: usize> Type for FilterText<MAX> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        format!("string(1..={MAX})").into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            min_length: Some(1),
            max_length: Some(MAX),
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

impl<const MAX: usize> ParseFromParameter for FilterText<MAX> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        let length = value.chars().count();
        if length == 0 {
            return Err(ParseError::custom("it is empty"));
        }
        if length > MAX {
            return Err(ParseError::custom(format!(
                "it is {length} characters long, more than {MAX}"
            )));
        }
        Ok(Self(value.to_owned()))
    }
}

impl<const MAX: usize> ToJSON for FilterText<MAX> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// The texts of a repeated filter parameter.
pub(super) fn texts<const MAX: usize>(values: Option<Vec<FilterText<MAX>>>) -> Vec<String> {
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
        assert!(FilterText::<4>::parse_from_parameter("").is_err());
        assert!(FilterText::<4>::parse_from_parameter("abcde").is_err());
        assert_eq!(
            FilterText::<4>::parse_from_parameter("abcd").ok(),
            Some(FilterText("abcd".to_owned()))
        );
        let MetaSchemaRef::Inline(schema) = FilterText::<4>::schema_ref() else {
            panic!("inline schema")
        };
        assert_eq!((schema.min_length, schema.max_length), (Some(1), Some(4)));
    }
}
