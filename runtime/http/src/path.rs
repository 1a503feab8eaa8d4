//! Route paths as users write them (`/items/{item_id:int}`) and as the router
//! stores them.

use std::fmt;

/// The converter named after a path parameter's colon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathConverter {
    Int,
    Float,
    Str,
    Uuid,
    /// The rest of the path, slashes included; only as the last segment.
    Path,
}

impl PathConverter {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "int" => PathConverter::Int,
            "float" => PathConverter::Float,
            "str" => PathConverter::Str,
            "uuid" => PathConverter::Uuid,
            "path" => PathConverter::Path,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PathConverter::Int => "int",
            PathConverter::Float => "float",
            PathConverter::Str => "str",
            PathConverter::Uuid => "uuid",
            PathConverter::Path => "path",
        }
    }
}

impl fmt::Display for PathConverter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathParam {
    pub name: String,
    pub converter: Option<PathConverter>,
}

/// A parsed route path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    /// The path as written.
    pub source: String,
    /// The key the router stores: parameters renamed by position (`{p0}`,
    /// `{*p1}`), so that routes differing only in parameter names share one
    /// node and are told apart by method, and a true clash is found.
    pub router_key: String,
    /// The path with parameters by name, converters left out
    /// (`/items/{item_id}`): what statistics and metrics call the route.
    pub template: String,
    /// Parameters in the order they appear.
    pub params: Vec<PathParam>,
}

/// Parses a route path such as `/items/{item_id:int}/files/{rest:path}`.
pub fn parse(path: &str) -> Result<PathPattern, String> {
    if !path.starts_with('/') {
        return Err(format!("route path '{path}' must start with '/'"));
    }
    let mut router_key = String::with_capacity(path.len());
    let mut template = String::with_capacity(path.len());
    let mut params: Vec<PathParam> = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(format!("route path '{path}' has an unmatched '}}'"));
        }
        router_key.push_str(&rest[..open]);
        template.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("route path '{path}' has an unclosed '{{'"))?;
        let inner = &after[..close];
        let (name, converter) = match inner.split_once(':') {
            Some((name, conv)) => {
                let converter = PathConverter::parse(conv.trim()).ok_or_else(|| {
                    format!(
                        "route path '{path}': unknown converter '{conv}' \
                         (use int, float, str, uuid or path)"
                    )
                })?;
                (name.trim(), Some(converter))
            }
            None => (inner.trim(), None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(format!(
                "route path '{path}': '{{{inner}}}' is not a parameter name"
            ));
        }
        if params.iter().any(|p| p.name == name) {
            return Err(format!(
                "route path '{path}' names parameter '{name}' twice"
            ));
        }
        let tail = &after[close + 1..];
        let index = params.len();
        if converter == Some(PathConverter::Path) {
            if !tail.is_empty() || !router_key.ends_with('/') {
                return Err(format!(
                    "route path '{path}': a ':path' parameter must be the whole last segment"
                ));
            }
            router_key.push_str(&format!("{{*p{index}}}"));
        } else {
            router_key.push_str(&format!("{{p{index}}}"));
        }
        template.push_str(&format!("{{{name}}}"));
        params.push(PathParam {
            name: name.to_owned(),
            converter,
        });
        rest = tail;
    }
    router_key.push_str(rest);
    template.push_str(rest);
    Ok(PathPattern {
        source: path.to_owned(),
        router_key,
        template,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_and_untyped_parameters() {
        let pattern = parse("/items/{item_id:int}/owners/{name}").unwrap();
        assert_eq!(pattern.router_key, "/items/{p0}/owners/{p1}");
        assert_eq!(pattern.template, "/items/{item_id}/owners/{name}");
        assert_eq!(
            pattern.params,
            vec![
                PathParam {
                    name: "item_id".into(),
                    converter: Some(PathConverter::Int)
                },
                PathParam {
                    name: "name".into(),
                    converter: None
                },
            ]
        );
    }

    #[test]
    fn path_converter_is_a_catch_all() {
        let pattern = parse("/files/{rest:path}").unwrap();
        assert_eq!(pattern.router_key, "/files/{*p0}");
        assert!(parse("/files/{rest:path}/x").is_err());
        assert!(parse("/files/a{rest:path}").is_err());
    }

    #[test]
    fn static_path_is_unchanged() {
        assert_eq!(parse("/hello").unwrap().router_key, "/hello");
    }

    #[test]
    fn malformed_paths_are_rejected_with_a_reason() {
        for (path, needle) in [
            ("items", "must start with '/'"),
            ("/items/{id", "unclosed"),
            ("/items/id}", "unmatched"),
            ("/items/{id:decimal}", "unknown converter"),
            ("/items/{}", "not a parameter name"),
            ("/a/{x}/b/{x}", "twice"),
        ] {
            let error = parse(path).unwrap_err();
            assert!(error.contains(needle), "{path}: {error}");
        }
    }
}
