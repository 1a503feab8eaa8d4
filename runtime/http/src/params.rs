//! Path, query, header and cookie parameters: where each is read from, how its
//! text becomes a typed JSON value, and the constraints it must then satisfy.
//!
//! Text from the URL and headers is coerced (`"5"` → `5`) by the declared
//! scalar type; constraints (`ge`, `max_length`, `pattern`, `format`, …) are a
//! JSON Schema checked on the coerced value.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName};
use serde_json::{Number, Value};

use crate::problem::{FieldError, LocSegment};
use crate::validation::Schema;

/// Where a parameter is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamSource {
    Path,
    Query,
    Header,
    Cookie,
}

impl ParamSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamSource::Path => "path",
            ParamSource::Query => "query",
            ParamSource::Header => "header",
            ParamSource::Cookie => "cookie",
        }
    }
}

/// The JSON type a parameter's text is coerced to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    Str,
    Int,
    Float,
    Bool,
}

/// A parameter as a binding declares it.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    /// The handler's parameter name.
    pub name: String,
    pub source: ParamSource,
    /// The query key, header name or cookie name read (for a path parameter,
    /// its name in the route path); error locations name it.
    pub key: String,
    pub scalar: Scalar,
    /// Several values (repeated query keys or headers) become a list.
    pub list: bool,
    pub required: bool,
    /// Constraints on the coerced value, if any.
    pub schema: Option<Value>,
}

impl ParamSpec {
    /// Where errors about this parameter point: the source and what the client
    /// sent (the query key, header or cookie name), as FastAPI's errors do.
    pub fn loc(&self) -> [LocSegment; 2] {
        [self.source.as_str().into(), self.key.as_str().into()]
    }
}

/// A parameter ready for requests: names resolved, schema compiled.
#[derive(Debug)]
pub(crate) struct CompiledParam {
    pub spec: ParamSpec,
    pub loc: [LocSegment; 2],
    pub schema: Option<Schema>,
    pub header: Option<HeaderName>,
    /// For a path parameter, its position among the route path's parameters.
    pub path_index: usize,
}

impl CompiledParam {
    pub fn compile(spec: ParamSpec, path_index: usize) -> Result<Self, String> {
        let schema = match &spec.schema {
            Some(schema) => Some(
                Schema::compile(schema).map_err(|e| format!("parameter '{}': {e}", spec.name))?,
            ),
            None => None,
        };
        let header = match spec.source {
            ParamSource::Header => Some(
                HeaderName::from_bytes(spec.key.to_ascii_lowercase().as_bytes()).map_err(|_| {
                    format!(
                        "parameter '{}': '{}' is not a header name",
                        spec.name, spec.key
                    )
                })?,
            ),
            _ => None,
        };
        let loc = spec.loc();
        Ok(CompiledParam {
            spec,
            loc,
            schema,
            header,
            path_index,
        })
    }
}

/// The raw inputs of one request that parameters are read from.
pub(crate) struct RawInputs<'a> {
    pub path: &'a [&'a str],
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

/// What a request carried for one parameter, as text.
pub(crate) enum Found<'a> {
    /// Every value sent (none: not sent).
    Texts(Vec<Cow<'a, str>>),
    /// A path segment that is not UTF-8 once percent-decoded.
    Undecodable(&'a str),
}

/// The parse pass: what the request carried for each parameter, as text.
pub(crate) fn extract<'a>(params: &[CompiledParam], inputs: &RawInputs<'a>) -> Vec<Found<'a>> {
    if params.is_empty() {
        return Vec::new();
    }
    let query: Vec<(Cow<'a, str>, Cow<'a, str>)> = match inputs.query {
        Some(q) if params.iter().any(|p| p.spec.source == ParamSource::Query) => {
            form_urlencoded::parse(q.as_bytes()).collect()
        }
        _ => Vec::new(),
    };
    params
        .iter()
        .map(|param| {
            Found::Texts(match param.spec.source {
                ParamSource::Path => match inputs.path.get(param.path_index) {
                    Some(segment) => {
                        match percent_encoding::percent_decode_str(segment).decode_utf8() {
                            Ok(text) => vec![text],
                            Err(_) => return Found::Undecodable(segment),
                        }
                    }
                    None => Vec::new(),
                },
                ParamSource::Query => query
                    .iter()
                    .filter(|(k, _)| *k == param.spec.key)
                    .map(|(_, v)| v.clone())
                    .collect(),
                ParamSource::Header => match &param.header {
                    Some(name) => inputs
                        .headers
                        .get_all(name)
                        .iter()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()))
                        .collect(),
                    None => Vec::new(),
                },
                ParamSource::Cookie => cookie_values(inputs.headers, &param.spec.key),
            })
        })
        .collect()
}

/// The validate pass: coerces and checks what [`extract`] found, one argument
/// per parameter; `None` marks an optional parameter that was not sent (the
/// binding applies its default). Returns how many errors a schema found but did
/// not list (see [`Schema::check`](crate::validation::Schema::check)).
pub(crate) fn validate(
    params: &[CompiledParam],
    found: Vec<Found<'_>>,
    args: &mut Vec<Option<Value>>,
    errors: &mut Vec<FieldError>,
) -> usize {
    let mut omitted = 0;
    for (param, found) in params.iter().zip(found) {
        let value = match found {
            Found::Texts(raw) => read_param(param, raw, errors, &mut omitted),
            Found::Undecodable(segment) => {
                errors.push(FieldError {
                    loc: param.loc.to_vec(),
                    msg: "Input should be a valid string, unable to parse raw data as a unicode string".into(),
                    kind: "string_unicode".into(),
                    input: Some(Value::String(segment.to_owned())),
                });
                None
            }
        };
        args.push(value);
    }
    omitted
}

fn cookie_values<'h>(headers: &'h HeaderMap, name: &str) -> Vec<Cow<'h, str>> {
    let mut found = Vec::new();
    for header in headers.get_all(http::header::COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((key, value)) = pair.split_once('=') {
                if key.trim() == name {
                    found.push(Cow::Borrowed(value.trim().trim_matches('"')));
                }
            }
        }
    }
    // Like a browser's cookie store, the last value sent wins.
    found.into_iter().last().into_iter().collect()
}

fn read_param(
    param: &CompiledParam,
    raw: Vec<Cow<'_, str>>,
    errors: &mut Vec<FieldError>,
    omitted: &mut usize,
) -> Option<Value> {
    if raw.is_empty() {
        if param.spec.required {
            errors.push(FieldError::missing(param.loc.to_vec()));
        }
        return None;
    }
    let before = errors.len();
    let value = if param.spec.list {
        let items = raw
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                let mut loc = param.loc.to_vec();
                loc.push(LocSegment::Index(i));
                coerce_or_report(text, param.spec.scalar, loc, errors)
            })
            .collect();
        Value::Array(items)
    } else {
        // A repeated scalar key: the last one wins, as in Starlette.
        let last = raw.last().map(|s| s.as_ref()).unwrap_or_default();
        coerce_or_report(last, param.spec.scalar, param.loc.to_vec(), errors)?
    };
    if errors.len() > before {
        return None;
    }
    if let Some(schema) = &param.schema {
        *omitted += schema.check(&value, &param.loc, errors);
    }
    Some(value)
}

fn coerce_or_report(
    text: &str,
    scalar: Scalar,
    loc: Vec<LocSegment>,
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    match coerce(text, scalar) {
        Ok(value) => Some(value),
        Err((kind, msg)) => {
            errors.push(FieldError {
                loc,
                msg: msg.to_owned(),
                kind: kind.into(),
                input: Some(Value::String(text.to_owned())),
            });
            None
        }
    }
}

/// Turns a parameter's text into the JSON value of its declared type.
/// An integer of any size, exactly: beyond 64 bits the number keeps its digits
/// (serde_json's `arbitrary_precision`) rather than being rounded to a float.
fn parse_int(text: &str) -> Option<Value> {
    if let Ok(int) = text.parse::<i64>() {
        return Some(Value::from(int));
    }
    if let Ok(int) = text.parse::<u64>() {
        return Some(Value::from(int));
    }
    let (sign, digits) = match text.strip_prefix('-') {
        Some(digits) => ("-", digits),
        None => ("", text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    serde_json::from_str::<Number>(&format!("{sign}{digits}"))
        .ok()
        .map(Value::Number)
}

pub fn coerce(text: &str, scalar: Scalar) -> Result<Value, (&'static str, &'static str)> {
    match scalar {
        Scalar::Str => Ok(Value::String(text.to_owned())),
        Scalar::Int => parse_int(text).ok_or((
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
        )),
        Scalar::Float => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or((
                "float_parsing",
                "Input should be a valid number, unable to parse string as a number",
            )),
        Scalar::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Ok(Value::Bool(true)),
            "false" | "0" | "no" | "off" | "f" | "n" => Ok(Value::Bool(false)),
            _ => Err((
                "bool_parsing",
                "Input should be a valid boolean, unable to interpret input",
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(name: &str, source: ParamSource, scalar: Scalar) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            source,
            key: name.into(),
            scalar,
            list: false,
            required: true,
            schema: None,
        }
    }

    fn run(
        params: Vec<ParamSpec>,
        path: &[&str],
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> (Vec<Option<Value>>, Vec<FieldError>) {
        let compiled: Vec<_> = params
            .into_iter()
            .map(|p| CompiledParam::compile(p, 0).unwrap())
            .collect();
        let (mut args, mut errors) = (Vec::new(), Vec::new());
        let inputs = RawInputs {
            path,
            query,
            headers,
        };
        let found = extract(&compiled, &inputs);
        validate(&compiled, found, &mut args, &mut errors);
        (args, errors)
    }

    #[test]
    fn coerces_each_scalar_type() {
        assert_eq!(coerce("42", Scalar::Int), Ok(json!(42)));
        assert_eq!(coerce("-7", Scalar::Int), Ok(json!(-7)));
        assert_eq!(
            coerce("18446744073709551615", Scalar::Int),
            Ok(json!(18446744073709551615u64))
        );
        assert_eq!(coerce("2.5", Scalar::Float), Ok(json!(2.5)));
        assert_eq!(coerce("YES", Scalar::Bool), Ok(json!(true)));
        assert_eq!(coerce("off", Scalar::Bool), Ok(json!(false)));
        assert_eq!(coerce("x", Scalar::Str), Ok(json!("x")));
        assert_eq!(coerce("4.0", Scalar::Int).unwrap_err().0, "int_parsing");
        let big = coerce("-0123456789012345678901234567890", Scalar::Int).unwrap();
        assert_eq!(big.to_string(), "-123456789012345678901234567890");
        assert_eq!(coerce("12x", Scalar::Int).unwrap_err().0, "int_parsing");
        assert_eq!(coerce("nan", Scalar::Float).unwrap_err().0, "float_parsing");
        assert_eq!(coerce("inf", Scalar::Float).unwrap_err().0, "float_parsing");
        assert_eq!(coerce("maybe", Scalar::Bool).unwrap_err().0, "bool_parsing");
    }

    #[test]
    fn query_values_repeat_into_lists_and_last_scalar_wins() {
        let mut tags = spec("tags", ParamSource::Query, Scalar::Int);
        tags.list = true;
        let limit = spec("limit", ParamSource::Query, Scalar::Int);
        let (args, errors) = run(
            vec![tags, limit],
            &[],
            Some("tags=1&limit=3&tags=2&limit=4"),
            &HeaderMap::new(),
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(args, vec![Some(json!([1, 2])), Some(json!(4))]);
    }

    #[test]
    fn every_bad_parameter_is_reported() {
        let mut tags = spec("tags", ParamSource::Query, Scalar::Int);
        tags.list = true;
        let needed = spec("needed", ParamSource::Query, Scalar::Str);
        let mut optional = spec("opt", ParamSource::Query, Scalar::Int);
        optional.required = false;
        let (args, errors) = run(
            vec![tags, needed, optional],
            &[],
            Some("tags=1&tags=x"),
            &HeaderMap::new(),
        );
        assert_eq!(args, vec![None, None, None]);
        let locs: Vec<_> = errors
            .iter()
            .map(|e| (serde_json::to_value(&e.loc).unwrap(), e.kind.as_ref()))
            .collect();
        assert_eq!(
            locs,
            vec![
                (json!(["query", "tags", 1]), "int_parsing"),
                (json!(["query", "needed"]), "missing")
            ]
        );
        assert_eq!(errors[0].input, Some(json!("x")));
    }

    #[test]
    fn constraints_apply_after_coercion() {
        let mut limit = spec("limit", ParamSource::Query, Scalar::Int);
        limit.schema = Some(json!({"type": "integer", "minimum": 1}));
        let (_, errors) = run(vec![limit], &[], Some("limit=0"), &HeaderMap::new());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kind, "greater_than_equal");
        assert_eq!(
            serde_json::to_value(&errors[0].loc).unwrap(),
            json!(["query", "limit"])
        );
    }

    #[test]
    fn path_segments_are_percent_decoded() {
        let name = spec("name", ParamSource::Path, Scalar::Str);
        let (args, errors) = run(vec![name], &["a%20b"], None, &HeaderMap::new());
        assert!(errors.is_empty());
        assert_eq!(args, vec![Some(json!("a b"))]);
    }

    #[test]
    fn headers_and_cookies_are_read_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert("user-agent", "curl/8".parse().unwrap());
        headers.append("cookie", "a=1; session=abc".parse().unwrap());
        let mut agent = spec("user_agent", ParamSource::Header, Scalar::Str);
        agent.key = "User-Agent".into();
        let session = spec("session", ParamSource::Cookie, Scalar::Str);
        let mut absent = spec("absent", ParamSource::Cookie, Scalar::Str);
        absent.required = false;
        let (args, errors) = run(vec![agent, session, absent], &[], None, &headers);
        assert!(errors.is_empty());
        assert_eq!(args, vec![Some(json!("curl/8")), Some(json!("abc")), None]);
    }
}
