//! Validating a large instance part by part, so that a body of a million bad
//! items costs one item's errors in memory at a time rather than all of them.
//!
//! `jsonschema` collects every error of an instance before the first can be
//! read. For a large instance the schema is split where it is plain (an object
//! of properties, an array of items): each level is checked with its children
//! replaced by `true`, then each child on its own. Anything else (`anyOf`,
//! `patternProperties`, a recursive `$ref`) stays whole: its instance is
//! checked in one piece.

use jsonschema::Validator;
use serde_json::{Map, Value};

use crate::problem::LocSegment;

/// Keywords a level may hold and still be split; titles and the like describe,
/// the rest are checked by the level itself once its children are `true`.
const SPLITTABLE: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "title",
    "description",
    "default",
    "examples",
];

/// How deep the split goes: below this a part is checked whole.
const MAX_DEPTH: usize = 16;

/// One level of a split schema.
pub(super) struct Part {
    /// The level itself (children `true`), or the whole subschema for a leaf.
    pub(super) validator: Validator,
    pub(super) children: Children,
}

pub(super) enum Children {
    Leaf,
    Properties(Vec<(String, Part)>),
    Items(Box<Part>),
}

/// Splits `root` (whose `$defs` every part keeps, for the `$ref`s of leaves).
pub(super) fn split(
    root: &Value,
    compile: &dyn Fn(&Value) -> Result<Validator, String>,
) -> Result<Part, String> {
    let defs = root.get("$defs");
    Splitter {
        defs,
        compile,
        refs: Vec::new(),
    }
    .part(root, 0)
}

/// Every node split is borrowed from the root schema (`'r`), its `$defs` too.
struct Splitter<'r, 'c> {
    defs: Option<&'r Value>,
    compile: &'c dyn Fn(&Value) -> Result<Validator, String>,
    /// The `$ref`s followed to reach the current part (a cycle stops splitting).
    refs: Vec<String>,
}

impl<'r> Splitter<'r, '_> {
    fn part(&mut self, node: &'r Value, depth: usize) -> Result<Part, String> {
        let original = node;
        let (node, followed) = self.resolve(node);
        let part = match node.and_then(Value::as_object) {
            Some(object) if depth < MAX_DEPTH && splittable(object) => {
                self.split_level(object, depth)
            }
            // A cycle: the leaf is the `$ref` itself, resolved by jsonschema.
            _ => self.leaf(node.unwrap_or(original)),
        };
        self.refs.truncate(self.refs.len() - followed);
        part
    }

    /// Follows a node that is only a local `$ref` (`{"$ref": "#/$defs/Item"}`)
    /// to its definition; `None` for a cycle or a reference elsewhere, which
    /// the leaf built from the node resolves.
    fn resolve(&mut self, mut node: &'r Value) -> (Option<&'r Value>, usize) {
        let mut followed = 0;
        while let Some(target) = only_ref(node) {
            let name = target.strip_prefix("#/$defs/");
            let definition = name.and_then(|name| self.defs?.get(name));
            match definition {
                Some(definition) if !self.refs.iter().any(|r| r == target) => {
                    self.refs.push(target.to_owned());
                    followed += 1;
                    node = definition;
                }
                _ => return (None, followed),
            }
        }
        (Some(node), followed)
    }

    fn split_level(
        &mut self,
        object: &'r Map<String, Value>,
        depth: usize,
    ) -> Result<Part, String> {
        let mut level = object.clone();
        let children = if let Some(Value::Object(properties)) = object.get("properties") {
            let mut parts = Vec::with_capacity(properties.len());
            for (name, schema) in properties {
                parts.push((name.clone(), self.part(schema, depth + 1)?));
            }
            let names = properties.keys().map(|n| (n.clone(), Value::Bool(true)));
            level.insert("properties".into(), Value::Object(names.collect()));
            Children::Properties(parts)
        } else if let Some(items) = object.get("items") {
            let part = self.part(items, depth + 1)?;
            level.insert("items".into(), Value::Bool(true));
            Children::Items(Box::new(part))
        } else {
            Children::Leaf
        };
        Ok(Part {
            validator: (self.compile)(&Value::Object(level))?,
            children,
        })
    }

    fn leaf(&self, node: &Value) -> Result<Part, String> {
        let whole = match (node, &self.defs) {
            (Value::Object(object), Some(defs)) => {
                let mut object = object.clone();
                object.insert("$defs".into(), (*defs).clone());
                Value::Object(object)
            }
            _ => node.clone(),
        };
        Ok(Part {
            validator: (self.compile)(&whole)?,
            children: Children::Leaf,
        })
    }
}

fn only_ref(node: &Value) -> Option<&str> {
    let object = node.as_object()?;
    let target = object.get("$ref")?.as_str()?;
    let described = object.keys().all(|k| {
        matches!(
            k.as_str(),
            "$ref" | "title" | "description" | "default" | "examples"
        )
    });
    described.then_some(target)
}

fn splittable(object: &Map<String, Value>) -> bool {
    let plain_type = matches!(
        object.get("type").and_then(Value::as_str),
        Some("object" | "array")
    );
    let plain_extra = object
        .get("additionalProperties")
        .is_none_or(Value::is_boolean);
    plain_type && plain_extra && object.keys().all(|k| SPLITTABLE.contains(&k.as_str()))
}

/// Where each child of `instance` under `part` is, and its part.
pub(super) fn children<'p, 'i>(
    part: &'p Part,
    instance: &'i Value,
) -> Box<dyn Iterator<Item = (LocSegment, &'p Part, &'i Value)> + 'i>
where
    'p: 'i,
{
    match (&part.children, instance) {
        (Children::Properties(parts), Value::Object(object)) => {
            Box::new(parts.iter().filter_map(|(name, part)| {
                Some((LocSegment::Key(name.clone()), part, object.get(name)?))
            }))
        }
        (Children::Items(part), Value::Array(items)) => Box::new(
            items
                .iter()
                .enumerate()
                .map(move |(i, item)| (LocSegment::Index(i), &**part, item)),
        ),
        _ => Box::new(std::iter::empty()),
    }
}
