//! JSON Schema validation of coerced parameters and parsed bodies.
//!
//! Schemas are compiled once at startup. A failing instance yields one
//! [`FieldError`] per failing field, located FastAPI-style: the location names
//! the field itself, also for a missing required property (the `jsonschema`
//! crate points such errors at the parent object).
//!
//! At most [`MAX_ERRORS`] errors are kept per request; the rest are counted.
//! Large instances are checked part by part ([`parts`]), so that a body of a
//! million bad items never holds a million errors at once.

mod parts;

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use jsonschema::{Draft, JsonType, ValidationError, Validator};
use serde_json::Value;

use crate::document::{Document, DocumentJson};
use crate::formats;
#[cfg(test)]
use crate::problem::Problem;
use crate::problem::{FieldError, LocSegment};

/// The most errors one 422 lists; its `detail` gives the total.
pub const MAX_ERRORS: usize = 100;

/// Instances with more values than this are checked part by part when invalid.
const LARGE: usize = 10_000;

/// A compiled JSON Schema.
pub struct Schema {
    validator: Validator,
    source: Value,
    /// Split on the first large invalid instance (most schemas never are).
    parts: OnceLock<Option<parts::Part>>,
    /// For large bodies held as a [`Document`]; compiled on the first.
    for_documents: OnceLock<Option<Validator<DocumentJson>>>,
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
        Ok(Schema {
            validator: build(schema)?,
            source: schema.clone(),
            parts: OnceLock::new(),
            for_documents: OnceLock::new(),
        })
    }

    /// Whether `document` satisfies the schema, checked in place; `None` if
    /// the schema could not be compiled for documents (check its `Value`).
    pub fn accepts(&self, document: &Document) -> Option<bool> {
        let validator = self
            .for_documents
            .get_or_init(|| options::<DocumentJson>().build(&self.source).ok());
        Some(validator.as_ref()?.is_valid(document.root()))
    }

    pub fn is_valid(&self, instance: &Value) -> bool {
        self.validator.is_valid(instance)
    }

    /// Appends an error for every failing field of `instance`, each located
    /// under `prefix` (such as `["body"]` or `["query", "limit"]`), while `out`
    /// holds fewer than [`MAX_ERRORS`]; returns how many more there were.
    pub fn check(
        &self,
        instance: &Value,
        prefix: &[LocSegment],
        out: &mut Vec<FieldError>,
    ) -> usize {
        if self.validator.is_valid(instance) {
            return 0;
        }
        let mut sink = Sink { out, omitted: 0 };
        let parts = (!fewer_values_than(instance, LARGE))
            .then(|| {
                self.parts
                    .get_or_init(|| parts::split(&self.source, &build).ok())
                    .as_ref()
            })
            .flatten();
        match parts {
            Some(part) => check_part(part, instance, &mut prefix.to_vec(), &mut sink),
            None => {
                for error in self.validator.iter_errors(instance) {
                    sink.take(&error, prefix);
                }
            }
        }
        sink.omitted
    }
}

fn build(schema: &Value) -> Result<Validator, String> {
    options::<jsonschema::json::SerdeJson>()
        .build(schema)
        .map_err(|error| format!("invalid JSON Schema: {error}"))
}

/// The options every schema is compiled with, for values represented as `F`.
fn options<'i, F: jsonschema::json::Json>(
) -> jsonschema::ValidationOptions<'i, std::sync::Arc<dyn jsonschema::Retrieve>, F> {
    jsonschema::options_for::<F>()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        // RFC 3339 requires a UTC offset; Python (and FastAPI) also take
        // local times such as "2024-05-06T07:08:09" and "07:08".
        .with_format("date-time", formats::is_date_time)
        .with_format("time", formats::is_time)
}

/// Whether `value` holds fewer than `limit` values, counted until it is known.
fn fewer_values_than(value: &Value, limit: usize) -> bool {
    fn count(value: &Value, left: &mut usize) -> bool {
        if *left == 0 {
            return false;
        }
        *left -= 1;
        match value {
            Value::Array(items) => items.iter().all(|v| count(v, left)),
            Value::Object(map) => map.values().all(|v| count(v, left)),
            _ => true,
        }
    }
    let mut left = limit;
    count(value, &mut left)
}

/// The errors of `instance` under `part`: its level's own, then each child's.
fn check_part(
    part: &parts::Part,
    instance: &Value,
    loc: &mut Vec<LocSegment>,
    sink: &mut Sink<'_>,
) {
    if !part.validator.is_valid(instance) {
        for error in part.validator.iter_errors(instance) {
            sink.take(&error, loc);
        }
    }
    for (segment, child, value) in parts::children(part, instance) {
        if child.validator.is_valid(value) && matches!(child.children, parts::Children::Leaf) {
            continue;
        }
        loc.push(segment);
        check_part(child, value, loc, sink);
        loc.pop();
    }
}

/// Where errors go: the first [`MAX_ERRORS`] into the list, the rest counted.
struct Sink<'a> {
    out: &'a mut Vec<FieldError>,
    omitted: usize,
}

impl Sink<'_> {
    fn take(&mut self, error: &ValidationError<'_>, prefix: &[LocSegment]) {
        if self.out.len() >= MAX_ERRORS {
            self.omitted += field_count(error);
            return;
        }
        push_error(error, prefix, self.out);
        if self.out.len() > MAX_ERRORS {
            self.omitted += self.out.len() - MAX_ERRORS;
            self.out.truncate(MAX_ERRORS);
        }
    }
}

/// How many field errors `push_error` makes of `error`, without making them.
fn field_count(error: &ValidationError<'_>) -> usize {
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => unexpected.len(),
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            let informative: Vec<_> = context
                .iter()
                .filter(|branch| !branch.iter().all(is_null_type_error))
                .collect();
            match informative.as_slice() {
                [branch] => branch.iter().map(field_count).sum(),
                _ => 1,
            }
        }
        _ => 1,
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

    /// An order of items, each checked in the part of the schema it is under.
    fn order_schema() -> Value {
        json!({
            "$ref": "#/$defs/Order",
            "$defs": {
                "Order": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "items": {"type": "array", "items": {"$ref": "#/$defs/Line"}, "maxItems": 100000},
                        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                        "parent": {"anyOf": [{"$ref": "#/$defs/Order"}, {"type": "null"}]}
                    },
                    "required": ["id", "items"],
                    "additionalProperties": false
                },
                "Line": {
                    "type": "object",
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
                    "required": ["sku", "qty"]
                }
            }
        })
    }

    fn order(lines: usize) -> Value {
        let items: Vec<Value> = (0..lines)
            .map(|i| match i % 5 {
                0 => json!({"sku": "a", "qty": 0}),
                1 => json!({"sku": 7}),
                2 => json!("line"),
                _ => json!({"sku": "b", "qty": 2}),
            })
            .collect();
        json!({"items": items, "note": 5, "extra": true, "parent": {"id": "x", "items": []}})
    }

    fn described(errors: &[FieldError]) -> Vec<String> {
        let mut all: Vec<String> = errors
            .iter()
            .map(|e| format!("{} {}", serde_json::to_string(&e.loc).unwrap(), e.kind))
            .collect();
        all.sort();
        all
    }

    #[test]
    fn large_instances_checked_part_by_part_find_the_same_errors() {
        let schema = Schema::compile(&order_schema()).unwrap();
        // Past LARGE values, so checked in parts.
        let instance = order(6_000);
        assert!(!fewer_values_than(&instance, LARGE));
        let mut whole = Vec::new();
        for error in schema.validator.iter_errors(&instance) {
            push_error(&error, &["body".into()], &mut whole);
        }
        // The order's own four (id missing, note, extra, the parent's id), and
        // four per five lines.
        assert_eq!(whole.len(), 4 + 4 * 1_200);
        let mut listed = Vec::new();
        let omitted = schema.check(&instance, &["body".into()], &mut listed);
        assert_eq!(
            (listed.len(), listed.len() + omitted),
            (MAX_ERRORS, whole.len())
        );
        assert!(listed.iter().all(|e| whole.contains(e)));
        // The parts find exactly the whole check's errors when nothing is capped.
        let parts = schema.parts.get().unwrap().as_ref().unwrap();
        let mut every = Vec::new();
        uncapped(parts, &instance, &mut vec!["body".into()], &mut every);
        assert_eq!(described(&every), described(&whole));
    }

    /// `check_part` without the cap.
    fn uncapped(
        part: &parts::Part,
        value: &Value,
        loc: &mut Vec<LocSegment>,
        out: &mut Vec<FieldError>,
    ) {
        for error in part.validator.iter_errors(value) {
            push_error(&error, loc, out);
        }
        for (segment, child, value) in parts::children(part, value) {
            loc.push(segment);
            uncapped(child, value, loc, out);
            loc.pop();
        }
    }

    #[test]
    fn a_million_bad_items_list_the_first_hundred_and_count_the_rest() {
        let schema =
            Schema::compile(&json!({"type": "array", "items": {"type": "integer"}})).unwrap();
        let instance = Value::Array(vec![json!("x"); 1_000_000]);
        let mut out = Vec::new();
        let omitted = schema.check(&instance, &["body".into()], &mut out);
        assert_eq!((out.len(), omitted), (MAX_ERRORS, 1_000_000 - MAX_ERRORS));
        assert_eq!(
            serde_json::to_value(&out[99].loc).unwrap(),
            json!(["body", 99])
        );
        let problem = Problem::validation(out, omitted);
        assert_eq!(
            problem.detail(),
            Some("1000000 validation errors (the first 100 are listed)")
        );
        assert_eq!(problem.errors().len(), MAX_ERRORS);
    }

    #[test]
    fn small_instances_keep_the_whole_checks_order() {
        let out = errors(order_schema(), order(10));
        let whole = {
            let schema = Schema::compile(&order_schema()).unwrap();
            let instance = order(10);
            let mut whole = Vec::new();
            for error in schema.validator.iter_errors(&instance) {
                push_error(&error, &["body".into()], &mut whole);
            }
            whole
        };
        assert_eq!(out, whole);
    }
}
