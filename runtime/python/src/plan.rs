//! Route plans as the Python package hands them over (`spikard/_plan.py`), turned
//! into the core's [`RouteSpec`] and the per-argument data the handler needs.

use std::sync::Arc;

use http::{Method, StatusCode};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use serde_json::Value;
use spikard_http::{framing, BodySpec, LocSegment, ParamSource, ParamSpec, RouteSpec, Scalar};

use crate::values::Numbers;

/// `spikard._plan.ParamPlan`
#[derive(FromPyObject)]
pub struct ParamPlan {
    pub name: String,
    pub source: String,
    pub key: String,
    pub scalar: String,
    pub is_list: bool,
    pub required: bool,
    pub schema: Option<Py<PyAny>>,
    pub default: Py<PyAny>,
    pub converter: Option<Py<PyAny>>,
}

/// `spikard._plan.BodyField`
#[derive(FromPyObject)]
pub struct BodyField {
    pub name: String,
    pub key: String,
    pub default: Py<PyAny>,
    pub converter: Option<Py<PyAny>>,
}

/// `spikard._plan.BodyPlan`
#[derive(FromPyObject)]
pub struct BodyPlan {
    pub name: String,
    pub schema: Option<Py<PyAny>>,
    pub required: bool,
    pub default: Py<PyAny>,
    pub converter: Option<Py<PyAny>>,
    /// How its numbers become Python numbers: `None`, `"int"` or `"float"`.
    pub numbers: Option<String>,
    /// Embedded body: each of these parameters reads one key of the object.
    pub fields: Vec<BodyField>,
}

/// `spikard._plan.RoutePlan`
#[derive(FromPyObject)]
pub struct RoutePlan {
    pub method: String,
    pub path: String,
    pub endpoint: Py<PyAny>,
    pub is_async: bool,
    pub status_code: u16,
    pub params: Vec<ParamPlan>,
    pub body: Option<BodyPlan>,
    pub request_param: Option<String>,
    pub response_param: Option<String>,
    pub serialize: Option<Py<PyAny>>,
    pub model_type: Option<Py<PyAny>>,
    pub result_may_hold_bytes: bool,
}

/// How one handler argument is filled from a validated value.
pub struct ArgPlan {
    /// Where a value this argument rejects is reported (`["query", "limit"]`).
    pub loc: Vec<LocSegment>,
    /// Used when the value was not sent.
    pub default: Py<PyAny>,
    /// Turns the JSON value into the annotated type (a Struct, a UUID, …).
    pub converter: Option<Py<PyAny>>,
    /// How the value's numbers become Python numbers (see [`Numbers`]).
    pub numbers: Numbers,
}

/// What the handler needs from a route plan, beside the core's spec.
pub struct HandlerPlan {
    pub label: Arc<str>,
    pub endpoint: Py<PyAny>,
    pub is_async: bool,
    pub status: StatusCode,
    pub args: Vec<ArgPlan>,
    /// The one parameter that receives the whole body.
    pub body: Option<ArgPlan>,
    /// Or the parameters that each receive one key of it.
    pub body_fields: Vec<(String, ArgPlan)>,
    /// The keyword names of every call: the parameters, the body, then the
    /// request and the response to amend, each if the handler takes it.
    pub kwnames: Py<PyTuple>,
    pub wants_request: bool,
    pub wants_response: bool,
    /// The result to the response model's value; `None`: sent as returned.
    pub serialize: Option<Py<PyAny>>,
    /// A result of exactly this type is the model's value already.
    pub model_type: Option<Py<PyAny>>,
    /// False when the response model proves the value sent holds no bytes.
    pub may_hold_bytes: bool,
}

fn schema_value(py: Python<'_>, schema: &Option<Py<PyAny>>) -> PyResult<Option<Value>> {
    schema
        .as_ref()
        .map(|s| {
            pythonize::depythonize::<Value>(s.bind(py))
                .map_err(|e| PyValueError::new_err(e.to_string()))
        })
        .transpose()
}

fn arg(
    py: Python<'_>,
    loc: Vec<LocSegment>,
    default: &Py<PyAny>,
    converter: &Option<Py<PyAny>>,
) -> ArgPlan {
    ArgPlan {
        loc,
        default: default.clone_ref(py),
        converter: converter.as_ref().map(|c| c.clone_ref(py)),
        numbers: Numbers::AsWritten,
    }
}

impl RoutePlan {
    pub fn split(&self, py: Python<'_>) -> PyResult<(RouteSpec, HandlerPlan)> {
        let label = format!("{} {}", self.method, self.path);
        let method = Method::from_bytes(self.method.as_bytes()).map_err(|_| {
            PyValueError::new_err(format!(
                "route {label}: '{}' is not an HTTP method",
                self.method
            ))
        })?;
        let status = framing::final_status(self.status_code)
            .map_err(|error| PyValueError::new_err(format!("route {label}: {error}")))?;
        let mut params = Vec::with_capacity(self.params.len());
        for param in &self.params {
            params.push(ParamSpec {
                name: param.name.clone(),
                source: match param.source.as_str() {
                    "path" => ParamSource::Path,
                    "query" => ParamSource::Query,
                    "header" => ParamSource::Header,
                    "cookie" => ParamSource::Cookie,
                    other => {
                        return Err(PyValueError::new_err(format!(
                            "route {label}: unknown source '{other}'"
                        )))
                    }
                },
                key: param.key.clone(),
                scalar: match param.scalar.as_str() {
                    "str" => Scalar::Str,
                    "int" => Scalar::Int,
                    "float" => Scalar::Float,
                    "bool" => Scalar::Bool,
                    other => {
                        return Err(PyValueError::new_err(format!(
                            "route {label}: unknown scalar '{other}'"
                        )))
                    }
                },
                list: param.is_list,
                required: param.required,
                schema: schema_value(py, &param.schema)?,
            });
        }
        let body = match &self.body {
            Some(body) => Some(BodySpec {
                schema: schema_value(py, &body.schema)?,
                required: body.required,
            }),
            None => None,
        };
        let spec = RouteSpec {
            method,
            path: self.path.clone(),
            params,
            body,
            wants_request: self.request_param.is_some(),
        };
        let names: Vec<&str> = self
            .params
            .iter()
            .map(|p| p.name.as_str())
            .chain(self.body.iter().flat_map(|b| {
                let whole = b.fields.is_empty().then_some(b.name.as_str());
                whole
                    .into_iter()
                    .chain(b.fields.iter().map(|f| f.name.as_str()))
            }))
            .chain(self.request_param.as_deref())
            .chain(self.response_param.as_deref())
            .collect();
        let kwnames = PyTuple::new(py, names.iter().map(|n| PyString::intern(py, n)))?.unbind();
        let handler = HandlerPlan {
            label: Arc::from(label),
            endpoint: self.endpoint.clone_ref(py),
            is_async: self.is_async,
            status,
            args: spec
                .params
                .iter()
                .zip(&self.params)
                .map(|(param, plan)| arg(py, param.loc().to_vec(), &plan.default, &plan.converter))
                .collect(),
            body: match self.body.as_ref().filter(|b| b.fields.is_empty()) {
                Some(b) => Some(ArgPlan {
                    numbers: Numbers::named(b.numbers.as_deref())?,
                    ..arg(
                        py,
                        vec![LocSegment::Key("body".into())],
                        &b.default,
                        &b.converter,
                    )
                }),
                None => None,
            },
            body_fields: self
                .body
                .iter()
                .flat_map(|b| &b.fields)
                .map(|f| {
                    let loc = vec![
                        LocSegment::Key("body".into()),
                        LocSegment::Key(f.key.clone()),
                    ];
                    (f.key.clone(), arg(py, loc, &f.default, &f.converter))
                })
                .collect(),
            kwnames,
            wants_request: self.request_param.is_some(),
            wants_response: self.response_param.is_some(),
            serialize: self.serialize.as_ref().map(|s| s.clone_ref(py)),
            model_type: self.model_type.as_ref().map(|t| t.clone_ref(py)),
            may_hold_bytes: self.result_may_hold_bytes,
        };
        Ok((spec, handler))
    }
}
