//! JSON Schema validation of coerced parameters and parsed bodies.
//!
//! Schemas are compiled once at startup. A failing instance yields one
//! [`FieldError`] per failing field, located FastAPI-style: the location names
//! the field itself, also for a missing required property (the `jsonschema`
//! crate points such errors at the parent object).

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use jsonschema::{Draft, JsonType, ValidationError, Validator};
use serde_json::Value;

use crate::formats;
use crate::problem::{FieldError, LocSegment};

/// A compiled JSON Schema.
pub struct Schema {
    validator: Validator,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Schema")
    }
}

impl Schema {
    /// Compiles `schema` (draft 2020-12, what msgspec and pydantic emit) with
    /// `format` checked.
    pub fn compile(schema: &Value) -> Result<Self, String> {
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            // RFC 3339 requires a UTC offset; Python (and FastAPI) also take
            // local times such as "2024-05-06T07:08:09" and "07:08".
            .with_format("date-time", formats::is_date_time)
            .with_format("time", formats::is_time)
            .build(schema)
            .map(|validator| Schema { validator })
            .map_err(|error| format!("invalid JSON Schema: {error}"))
    }

    pub fn is_valid(&self, instance: &Value) -> bool {
        self.validator.is_valid(instance)
    }

    /// Appends an error for every failing field of `instance`, each located
    /// under `prefix` (such as `["body"]` or `["query", "limit"]`).
    pub fn check(&self, instance: &Value, prefix: &[LocSegment], out: &mut Vec<FieldError>) {
        if self.validator.is_valid(instance) {
            return;
        }
        for error in self.validator.iter_errors(instance) {
            push_error(&error, prefix, out);
        }
    }
}

fn location(error: &ValidationError<'_>, prefix: &[LocSegment]) -> Vec<LocSegment> {
    let mut loc = prefix.to_vec();
    for segment in error.instance_path().segments() {
        loc.push(match segment {
            LocationSegment::Property(key) => LocSegment::Key(key.into_owned()),
            LocationSegment::Index(index) => LocSegment::Index(index),
        });
    }
    loc
}

fn push_error(error: &ValidationError<'_>, prefix: &[LocSegment], out: &mut Vec<FieldError>) {
    let loc = location(error, prefix);
    let input = || Some(error.instance().clone().into_owned());
    let field = |kind: &'static str, msg: String| FieldError {
        loc: loc.clone(),
        msg,
        kind: kind.into(),
        input: input(),
    };
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let mut loc = loc.clone();
            loc.push(LocSegment::Key(
                property
                    .as_str()
                    .map_or_else(|| property.to_string(), str::to_owned),
            ));
            out.push(FieldError::missing(loc));
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let object = error.instance();
            for name in unexpected {
                let mut loc = loc.clone();
                loc.push(LocSegment::Key(name.clone()));
                out.push(FieldError {
                    loc,
                    msg: "Extra inputs are not permitted".to_owned(),
                    kind: "extra_forbidden".into(),
                    input: object.get(name).cloned(),
                });
            }
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            // `X | None` is `anyOf: [X, null]`: report why the value is not an X
            // rather than that it matches no branch.
            let informative: Vec<_> = context
                .iter()
                .filter(|branch| !branch.iter().all(is_null_type_error))
                .collect();
            if let [branch] = informative.as_slice() {
                for inner in branch.iter() {
                    push_error(inner, prefix, out);
                }
            } else {
                out.push(field(
                    "union_tag_invalid",
                    "Input does not match any of the allowed types".to_owned(),
                ));
            }
        }
        ValidationErrorKind::Type { kind } => {
            let (kind, msg) = type_message(kind);
            out.push(field(kind, msg));
        }
        kind => {
            let (kind, msg) = constraint_message(kind, error);
            out.push(field(kind, msg));
        }
    }
}

fn is_null_type_error(error: &ValidationError<'_>) -> bool {
    matches!(
        error.kind(),
        ValidationErrorKind::Type {
            kind: TypeKind::Single(JsonType::Null)
        }
    )
}

fn type_name(ty: JsonType) -> (&'static str, &'static str) {
    match ty {
        JsonType::Integer => ("int_type", "a valid integer"),
        JsonType::Number => ("float_type", "a valid number"),
        JsonType::String => ("string_type", "a valid string"),
        JsonType::Boolean => ("bool_type", "a valid boolean"),
        JsonType::Array => ("list_type", "a valid list"),
        JsonType::Object => ("dict_type", "a valid dictionary or object"),
        JsonType::Null => ("none_required", "null"),
    }
}

fn type_message(kind: &TypeKind) -> (&'static str, String) {
    match kind {
        TypeKind::Single(ty) => {
            let (kind, name) = type_name(*ty);
            (kind, format!("Input should be {name}"))
        }
        TypeKind::Multiple(set) => {
            let names: Vec<_> = set.iter().map(|ty| type_name(ty).1).collect();
            (
                "type_error",
                format!("Input should be {}", names.join(" or ")),
            )
        }
    }
}

fn constraint_message(
    kind: &ValidationErrorKind,
    error: &ValidationError<'_>,
) -> (&'static str, String) {
    use ValidationErrorKind as K;
    match kind {
        K::Minimum { limit } => (
            "greater_than_equal",
            format!("Input should be greater than or equal to {limit}"),
        ),
        K::ExclusiveMinimum { limit } => (
            "greater_than",
            format!("Input should be greater than {limit}"),
        ),
        K::Maximum { limit } => (
            "less_than_equal",
            format!("Input should be less than or equal to {limit}"),
        ),
        K::ExclusiveMaximum { limit } => {
            ("less_than", format!("Input should be less than {limit}"))
        }
        K::MinLength { limit } => (
            "string_too_short",
            format!(
                "String should have at least {limit} character{}",
                plural(*limit)
            ),
        ),
        K::MaxLength { limit } => (
            "string_too_long",
            format!(
                "String should have at most {limit} character{}",
                plural(*limit)
            ),
        ),
        K::MinItems { limit } => (
            "too_short",
            format!("List should have at least {limit} item{}", plural(*limit)),
        ),
        K::MaxItems { limit } => (
            "too_long",
            format!("List should have at most {limit} item{}", plural(*limit)),
        ),
        K::Pattern { pattern } => (
            "string_pattern_mismatch",
            format!("String should match pattern '{pattern}'"),
        ),
        K::Format { format } => format_message(format),
        K::Enum { options } => ("enum", format!("Input should be {}", one_of(options))),
        K::Constant { expected_value } => {
            ("literal_error", format!("Input should be {expected_value}"))
        }
        K::MultipleOf { multiple_of } => (
            "multiple_of",
            format!("Input should be a multiple of {multiple_of}"),
        ),
        K::UniqueItems => ("unique_items", "List should have unique items".to_owned()),
        K::MinProperties { limit } => (
            "too_short",
            format!(
                "Object should have at least {limit} propert{}",
                if *limit == 1 { "y" } else { "ies" }
            ),
        ),
        K::MaxProperties { limit } => (
            "too_long",
            format!(
                "Object should have at most {limit} propert{}",
                if *limit == 1 { "y" } else { "ies" }
            ),
        ),
        _ => ("value_error", error.masked().to_string()),
    }
}

fn format_message(format: &str) -> (&'static str, String) {
    match format {
        "uuid" => ("uuid_parsing", "Input should be a valid UUID".to_owned()),
        "date-time" => (
            "datetime_parsing",
            "Input should be a valid datetime".to_owned(),
        ),
        "date" => ("date_parsing", "Input should be a valid date".to_owned()),
        "time" => ("time_parsing", "Input should be a valid time".to_owned()),
        "email" => (
            "value_error",
            "Input should be a valid email address".to_owned(),
        ),
        "uri" => ("url_parsing", "Input should be a valid URL".to_owned()),
        other => ("format", format!("Input should be a valid {other}")),
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn one_of(options: &Value) -> String {
    let items: Vec<String> = match options {
        Value::Array(items) => items.iter().map(Value::to_string).collect(),
        other => vec![other.to_string()],
    };
    match items.as_slice() {
        [] => "one of no values".to_owned(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(schema: Value, instance: Value) -> Vec<FieldError> {
        let schema = Schema::compile(&schema).unwrap();
        let mut out = Vec::new();
        schema.check(&instance, &["body".into()], &mut out);
        out
    }

    fn item_schema() -> Value {
        json!({
            "$ref": "#/$defs/Item",
            "$defs": {"Item": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "price": {"type": "number", "exclusiveMinimum": 0},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "id": {"type": "string", "format": "uuid"}
                },
                "required": ["name", "price"]
            }}
        })
    }

    #[test]
    fn valid_instance_has_no_errors() {
        assert!(errors(
            item_schema(),
            json!({"name": "a", "price": 1, "tags": ["x"]})
        )
        .is_empty());
    }

    #[test]
    fn every_failing_field_is_reported_at_its_own_location() {
        let out = errors(item_schema(), json!({"price": "9", "tags": ["x", 3]}));
        let mut locs: Vec<_> = out
            .iter()
            .map(|e| (serde_json::to_value(&e.loc).unwrap(), e.kind.as_ref()))
            .collect();
        locs.sort_by_key(|(loc, _)| loc.to_string());
        assert_eq!(
            locs,
            vec![
                (json!(["body", "name"]), "missing"),
                (json!(["body", "price"]), "float_type"),
                (json!(["body", "tags", 1]), "string_type"),
            ]
        );
    }

    #[test]
    fn strings_are_not_numbers_in_bodies() {
        let out = errors(json!({"type": "integer"}), json!("5"));
        assert_eq!(out[0].kind, "int_type");
        assert_eq!(out[0].input, Some(json!("5")));
    }

    #[test]
    fn formats_are_checked() {
        let out = errors(
            item_schema(),
            json!({"name": "a", "price": 2, "id": "nope"}),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, "uuid_parsing");
        assert_eq!(
            serde_json::to_value(&out[0].loc).unwrap(),
            json!(["body", "id"])
        );
    }

    #[test]
    fn constraints_name_their_limit() {
        let out = errors(item_schema(), json!({"name": "", "price": 0}));
        let msgs: Vec<_> = out
            .iter()
            .map(|e| (e.kind.as_ref(), e.msg.as_str()))
            .collect();
        assert!(msgs.contains(&(
            "string_too_short",
            "String should have at least 1 character"
        )));
        assert!(msgs.contains(&("greater_than", "Input should be greater than 0")));
    }

    #[test]
    fn optional_value_reports_the_inner_type() {
        let out = errors(
            json!({"anyOf": [{"type": "integer"}, {"type": "null"}]}),
            json!("x"),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, "int_type");
    }

    #[test]
    fn extra_properties_are_located_by_name() {
        let schema =
            json!({"type": "object", "properties": {"a": {}}, "additionalProperties": false});
        let out = errors(schema, json!({"a": 1, "b": 2}));
        assert_eq!(out[0].kind, "extra_forbidden");
        assert_eq!(
            serde_json::to_value(&out[0].loc).unwrap(),
            json!(["body", "b"])
        );
        assert_eq!(out[0].input, Some(json!(2)));
    }

    #[test]
    fn invalid_schema_is_a_startup_error() {
        assert!(Schema::compile(&json!({"type": 12})).is_err());
    }
}
