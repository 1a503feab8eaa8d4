//! The route table: paths and methods to routes, built once at startup.
//!
//! Matching is matchit's (the router inside axum): static segments win over
//! parameters. Two routes that cannot be told apart are a startup error that
//! names both.

use std::collections::HashMap;
use std::sync::Arc;

use http::Method;

use crate::body::{BodySpec, CompiledBody};
use crate::handler::Handler;
use crate::params::{CompiledParam, ParamSource, ParamSpec};
use crate::path::{self, PathPattern};

/// A route as a binding declares it.
#[derive(Clone, Debug)]
pub struct RouteSpec {
    pub method: Method,
    pub path: String,
    pub params: Vec<ParamSpec>,
    pub body: Option<BodySpec>,
    /// The handler reads the request itself: hand it the raw path parameters
    /// and the body's bytes (read whatever its media type) in [`RequestData`].
    ///
    /// [`RequestData`]: crate::RequestData
    pub wants_request: bool,
}

/// A route ready for requests.
pub(crate) struct Route {
    pub params: Vec<CompiledParam>,
    pub body: Option<Arc<CompiledBody>>,
    pub handler: Arc<dyn Handler>,
    /// Its position among every route, in the order they were added.
    pub index: usize,
    /// The path parameters' names, in path order.
    pub path_names: Vec<String>,
    pub wants_request: bool,
}

impl Route {
    fn compile(
        spec: RouteSpec,
        pattern: &PathPattern,
        handler: Arc<dyn Handler>,
        index: usize,
    ) -> Result<Self, String> {
        let params = spec
            .params
            .into_iter()
            .map(|param| {
                let path_index = if param.source == ParamSource::Path {
                    pattern
                        .params
                        .iter()
                        .position(|p| p.name == param.key)
                        .ok_or_else(|| {
                            format!(
                            "parameter '{}' reads path parameter '{}', which '{}' does not have",
                            param.name, param.key, pattern.source
                        )
                        })?
                } else {
                    0
                };
                CompiledParam::compile(param, path_index)
            })
            .collect::<Result<Vec<_>, String>>()?;
        let body = spec
            .body
            .as_ref()
            .map(|spec| CompiledBody::compile(spec).map(Arc::new))
            .transpose()?;
        Ok(Route {
            params,
            body,
            handler,
            index,
            path_names: pattern.params.iter().map(|p| p.name.clone()).collect(),
            wants_request: spec.wants_request,
        })
    }
}

/// All routes sharing one path shape, by method.
struct Node {
    methods: Vec<(Method, String, Route)>,
    /// The last parameter is a `{name:path}` one, which may hold `/`.
    ends_in_path: bool,
}

impl Node {
    fn route(&self, method: &Method) -> Option<&Route> {
        self.methods
            .iter()
            .find(|(m, _, _)| m == method)
            .map(|(_, _, route)| route)
    }

    /// The methods a client may use on this path, for `Allow`.
    fn allowed(&self) -> Vec<Method> {
        let mut allowed: Vec<Method> = self.methods.iter().map(|(m, _, _)| m.clone()).collect();
        for implied in [Method::HEAD, Method::OPTIONS] {
            let served = match implied {
                Method::HEAD => allowed.contains(&Method::GET),
                _ => true,
            };
            if served && !allowed.contains(&implied) {
                allowed.push(implied);
            }
        }
        allowed
    }
}

/// Collects routes; [`RouterBuilder::build`] checks them all against each other.
#[derive(Default)]
pub struct RouterBuilder {
    nodes: Vec<(String, Node)>,
    by_key: HashMap<String, usize>,
    templates: Vec<String>,
}

impl RouterBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route. Fails for a malformed path, a schema that does not
    /// compile, or a route with the same method and path shape as one
    /// already added.
    pub fn route(&mut self, spec: RouteSpec, handler: Arc<dyn Handler>) -> Result<(), String> {
        let pattern = path::parse(&spec.path)?;
        let method = spec.method.clone();
        let label = format!("{method} {}", pattern.source);
        let index = self.templates.len();
        let route = Route::compile(spec, &pattern, handler, index)
            .map_err(|e| format!("route {label}: {e}"))?;
        let node_index = *self
            .by_key
            .entry(pattern.router_key.clone())
            .or_insert_with(|| {
                self.nodes.push((
                    pattern.router_key.clone(),
                    Node {
                        methods: Vec::new(),
                        ends_in_path: pattern.router_key.ends_with('}')
                            && pattern.router_key.contains("{*"),
                    },
                ));
                self.nodes.len() - 1
            });
        let node = &mut self.nodes[node_index].1;
        if let Some((_, existing, _)) = node.methods.iter().find(|(m, _, _)| *m == method) {
            return Err(format!(
                "routes {existing} and {label} cannot be told apart: \
                 both match the same requests"
            ));
        }
        self.templates
            .push(format!("{method} {}", pattern.template));
        node.methods.push((method, label, route));
        Ok(())
    }

    pub fn build(self) -> Result<Router, String> {
        let mut matcher = matchit::Router::new();
        let mut nodes: Vec<Node> = Vec::with_capacity(self.nodes.len());
        let mut keys: Vec<String> = Vec::with_capacity(self.nodes.len());
        for (index, (key, node)) in self.nodes.into_iter().enumerate() {
            if let Err(error) = matcher.insert(key.clone(), index) {
                let label = &node.methods[0].1;
                let clash = match &error {
                    matchit::InsertError::Conflict { with } => keys.iter().position(|k| k == with),
                    _ => None,
                };
                return Err(match clash {
                    Some(other) => format!(
                        "routes {} and {label} cannot be told apart by the router",
                        nodes[other].methods[0].1
                    ),
                    None => format!("route {label}: {error}"),
                });
            }
            keys.push(key);
            nodes.push(node);
        }
        Ok(Router {
            matcher,
            nodes,
            templates: self.templates,
        })
    }
}

fn has_encoded_slash(segment: &str) -> bool {
    segment.contains('%') && (segment.contains("%2F") || segment.contains("%2f"))
}

pub(crate) enum Lookup<'r, 'p> {
    Found {
        route: &'r Route,
        path_values: Vec<&'p str>,
    },
    /// An OPTIONS request for a path with no OPTIONS route: what it allows.
    Options(Vec<Method>),
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

pub struct Router {
    matcher: matchit::Router<usize>,
    nodes: Vec<Node>,
    templates: Vec<String>,
}

impl Router {
    pub(crate) fn lookup<'r, 'p>(&'r self, method: &Method, path: &'p str) -> Lookup<'r, 'p> {
        let Ok(matched) = self.matcher.at(path) else {
            return Lookup::NotFound;
        };
        let node = &self.nodes[*matched.value];
        // A one-segment parameter never holds a `/`: with one sent encoded
        // (`%2F`) the path does not match, as in Starlette, which decodes the
        // path before matching. A `{name:path}` parameter keeps what it matched.
        let segments = matched.params.len() - usize::from(node.ends_in_path);
        if matched
            .params
            .iter()
            .take(segments)
            .any(|(_, value)| has_encoded_slash(value))
        {
            return Lookup::NotFound;
        }
        // HEAD is answered by the GET route (the server sends no body).
        let found = node.route(method).or_else(|| {
            (method == Method::HEAD)
                .then(|| node.route(&Method::GET))
                .flatten()
        });
        match found {
            Some(route) => {
                // Parameters come back in path order, named p0, p1, …
                let path_values = matched.params.iter().map(|(_, value)| value).collect();
                Lookup::Found { route, path_values }
            }
            None if method == Method::OPTIONS => Lookup::Options(node.allowed()),
            None => Lookup::MethodNotAllowed(node.allowed()),
        }
    }

    /// Every route as `METHOD /path/{param}` (converters left out), in the
    /// order they were added: a route's index is its position here.
    pub fn templates(&self) -> &[String] {
        &self.templates
    }

    /// Every method some route serves (with HEAD and OPTIONS, which every path
    /// answers), for `OPTIONS *`.
    pub fn methods(&self) -> Vec<Method> {
        let mut methods = vec![Method::OPTIONS];
        for node in &self.nodes {
            for method in node.allowed() {
                if !methods.contains(&method) {
                    methods.push(method);
                }
            }
        }
        methods
    }

    /// Every route as `METHOD /path` as declared, in registration order.
    pub fn routes(&self) -> impl Iterator<Item = &str> {
        self.nodes
            .iter()
            .flat_map(|node| node.methods.iter().map(|(_, label, _)| label.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::{json_response, RequestData};
    use crate::params::Scalar;

    fn handler() -> Arc<dyn Handler> {
        Arc::new(|_: RequestData| async { Ok(json_response(http::StatusCode::OK, "1".into())) })
    }

    fn spec(method: Method, path: &str) -> RouteSpec {
        RouteSpec {
            method,
            path: path.into(),
            params: Vec::new(),
            body: None,
            wants_request: false,
        }
    }

    fn found(router: &Router, method: Method, path: &str) -> Option<Vec<String>> {
        match router.lookup(&method, path) {
            Lookup::Found { path_values, .. } => {
                Some(path_values.into_iter().map(str::to_owned).collect())
            }
            _ => None,
        }
    }

    #[test]
    fn an_encoded_slash_never_reaches_a_one_segment_parameter() {
        let mut builder = RouterBuilder::new();
        builder
            .route(spec(Method::GET, "/items/{id}/tags/{tag}"), handler())
            .unwrap();
        builder
            .route(spec(Method::GET, "/files/{name}/{rest:path}"), handler())
            .unwrap();
        let router = builder.build().unwrap();
        assert_eq!(
            found(&router, Method::GET, "/items/a%20b/tags/x"),
            Some(vec!["a%20b".into(), "x".into()])
        );
        assert_eq!(found(&router, Method::GET, "/items/a%2Fb/tags/x"), None);
        assert_eq!(found(&router, Method::GET, "/items/a/tags/x%2f"), None);
        // A path parameter keeps what it matched, encoded slashes too.
        assert_eq!(
            found(&router, Method::GET, "/files/n/a%2Fb/c"),
            Some(vec!["n".into(), "a%2Fb/c".into()])
        );
        assert_eq!(found(&router, Method::GET, "/files/n%2F/a"), None);
    }

    #[test]
    fn static_segments_win_over_parameters() {
        let mut builder = RouterBuilder::new();
        builder
            .route(spec(Method::GET, "/items/{id}"), handler())
            .unwrap();
        builder
            .route(spec(Method::GET, "/items/latest"), handler())
            .unwrap();
        let router = builder.build().unwrap();
        assert_eq!(found(&router, Method::GET, "/items/latest"), Some(vec![]));
        assert_eq!(
            found(&router, Method::GET, "/items/7"),
            Some(vec!["7".to_owned()])
        );
    }

    #[test]
    fn methods_share_a_path_with_different_parameter_names() {
        let mut builder = RouterBuilder::new();
        builder
            .route(spec(Method::GET, "/items/{id}"), handler())
            .unwrap();
        builder
            .route(spec(Method::DELETE, "/items/{item_id}"), handler())
            .unwrap();
        let router = builder.build().unwrap();
        assert!(found(&router, Method::DELETE, "/items/3").is_some());
        match router.lookup(&Method::PUT, "/items/3") {
            Lookup::MethodNotAllowed(allowed) => {
                assert_eq!(
                    allowed,
                    vec![Method::GET, Method::DELETE, Method::HEAD, Method::OPTIONS]
                )
            }
            _ => panic!("expected 405"),
        }
        assert!(matches!(
            router.lookup(&Method::GET, "/nothing"),
            Lookup::NotFound
        ));
    }

    #[test]
    fn indistinguishable_routes_name_both() {
        let mut builder = RouterBuilder::new();
        builder
            .route(spec(Method::GET, "/items/{id:int}"), handler())
            .unwrap();
        let error = builder
            .route(spec(Method::GET, "/items/{name:str}"), handler())
            .unwrap_err();
        assert!(
            error.contains("GET /items/{id:int}") && error.contains("GET /items/{name:str}"),
            "{error}"
        );
    }

    #[test]
    fn router_level_conflicts_name_both_routes() {
        let mut builder = RouterBuilder::new();
        builder
            .route(spec(Method::GET, "/files/{rest:path}"), handler())
            .unwrap();
        builder
            .route(spec(Method::POST, "/files/{name}"), handler())
            .unwrap();
        let error = builder
            .build()
            .err()
            .expect("a catch-all and a parameter at one position conflict");
        assert!(
            error.contains("GET /files/{rest:path}") && error.contains("POST /files/{name}"),
            "{error}"
        );
    }

    #[test]
    fn path_parameter_specs_must_exist_in_the_path() {
        let mut builder = RouterBuilder::new();
        let mut route = spec(Method::GET, "/items/{id}");
        route.params.push(ParamSpec {
            name: "other".into(),
            source: ParamSource::Path,
            key: "other".into(),
            scalar: Scalar::Str,
            list: false,
            required: true,
            schema: None,
        });
        let error = builder.route(route, handler()).unwrap_err();
        assert!(error.contains("does not have"), "{error}");
    }
}
