use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::CsdlError;

/// The types of one or more CSDL schemas, keyed by fully qualified name.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub(crate) types: HashMap<String, TypeDef>,
    /// Alias → namespace (`graph` → `microsoft.graph`).
    pub(crate) aliases: HashMap<String, String>,
    /// Entity sets and singletons of the entity container → their (item) type.
    pub(crate) container: HashMap<String, ContainerMember>,
}

#[derive(Debug, Clone)]
pub(crate) struct ContainerMember {
    pub(crate) type_name: String,
    pub(crate) singleton: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum TypeDef {
    Structured(StructuredType),
    Enum(EnumType),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StructuredKind {
    Entity,
    Complex,
}

#[derive(Debug, Clone)]
pub(crate) struct StructuredType {
    pub(crate) name: String,
    pub(crate) kind: StructuredKind,
    pub(crate) base: Option<String>,
    pub(crate) open: bool,
    pub(crate) properties: HashMap<String, Property>,
}

#[derive(Debug, Clone)]
pub(crate) struct Property {
    pub(crate) type_ref: TypeRef,
    pub(crate) nullable: bool,
    pub(crate) navigation: bool,
}

/// A property's declared type: `T` or `Collection(T)` with `T` fully qualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeRef {
    pub(crate) collection: bool,
    pub(crate) name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct EnumType {
    pub(crate) members: HashSet<String>,
    pub(crate) flags: bool,
}

/// Base-type chains longer than this are treated as cycles (Graph's deepest is under ten).
pub(crate) const MAX_INHERITANCE_DEPTH: usize = 64;

impl Schema {
    /// Reads and parses a CSDL file.
    pub fn load(path: impl AsRef<Path>) -> Result<Schema, CsdlError> {
        let path = path.as_ref();
        let xml = std::fs::read_to_string(path).map_err(|source| CsdlError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Schema::from_xml(&xml)
    }

    /// Parses a CSDL document (`edmx:Edmx` with one or more `Schema` elements).
    pub fn from_xml(xml: &str) -> Result<Schema, CsdlError> {
        let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml);
        let doc = roxmltree::Document::parse(xml)?;
        let schema_nodes: Vec<_> = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "Schema")
            .collect();
        if schema_nodes.is_empty() {
            return Err(CsdlError::Invalid("no <Schema> element".into()));
        }

        let mut aliases = HashMap::new();
        for node in &schema_nodes {
            let namespace = required_attribute(node, "Namespace")?;
            if let Some(alias) = node.attribute("Alias") {
                aliases.insert(alias.to_string(), namespace.to_string());
            }
        }

        let mut schema = Schema {
            types: HashMap::new(),
            aliases,
            container: HashMap::new(),
        };
        for node in &schema_nodes {
            let namespace = required_attribute(node, "Namespace")?;
            for child in node.children().filter(roxmltree::Node::is_element) {
                let kind = match child.tag_name().name() {
                    "EntityContainer" => {
                        schema.parse_container(&child)?;
                        continue;
                    }
                    "EntityType" => StructuredKind::Entity,
                    "ComplexType" => StructuredKind::Complex,
                    "EnumType" => {
                        let name = format!("{namespace}.{}", required_attribute(&child, "Name")?);
                        let enum_type = parse_enum(&child)?;
                        schema.types.insert(name, TypeDef::Enum(enum_type));
                        continue;
                    }
                    _ => continue,
                };
                let structured = schema.parse_structured(namespace, kind, &child)?;
                schema
                    .types
                    .insert(structured.name.clone(), TypeDef::Structured(structured));
            }
        }
        Ok(schema)
    }

    /// The item type of an entity set (`users` → `microsoft.graph.user`) or the type of a singleton
    /// (`organization` is a set; `tenantRelationships` a singleton).
    pub fn entity_set_type(&self, name: &str) -> Option<&str> {
        self.container.get(name).map(|m| m.type_name.as_str())
    }

    /// Whether `name` is a singleton rather than an entity set.
    pub fn is_singleton(&self, name: &str) -> bool {
        self.container.get(name).is_some_and(|m| m.singleton)
    }

    /// Names of all structural and navigation properties of a type, inherited ones included, sorted.
    pub fn property_names(&self, type_name: &str) -> Option<Vec<String>> {
        let mut current = Some(self.structured(&self.qualify(type_name))?);
        let mut names = Vec::new();
        for _ in 0..MAX_INHERITANCE_DEPTH {
            let Some(structured) = current else { break };
            names.extend(structured.properties.keys().cloned());
            current = structured.base.as_deref().and_then(|b| self.structured(b));
        }
        names.sort();
        names.dedup();
        Some(names)
    }

    /// Whether the schema declares a type of this name (qualified or aliased).
    pub fn has_type(&self, type_name: &str) -> bool {
        self.types.contains_key(&self.qualify(type_name))
    }

    /// Number of entity, complex and enum types loaded.
    pub fn type_count(&self) -> usize {
        self.types.len()
    }

    /// Declared type of a property (inherited ones included), e.g. `Collection(microsoft.graph.assignedLicense)`.
    pub fn property_type(&self, type_name: &str, property: &str) -> Option<String> {
        let structured = self.structured(&self.qualify(type_name))?;
        let found = self.find_property(structured, property)?;
        Some(if found.type_ref.collection {
            format!("Collection({})", found.type_ref.name)
        } else {
            found.type_ref.name.clone()
        })
    }

    /// Whether `type_name` is `ancestor` or derives from it, directly or through base types.
    pub fn derives_from(&self, type_name: &str, ancestor: &str) -> bool {
        let ancestor = self.qualify(ancestor);
        let mut current = Some(self.qualify(type_name));
        for _ in 0..MAX_INHERITANCE_DEPTH {
            let Some(name) = current else { return false };
            if name == ancestor {
                return true;
            }
            current = self.structured(&name).and_then(|t| t.base.clone());
        }
        false
    }

    pub(crate) fn structured(&self, qualified: &str) -> Option<&StructuredType> {
        match self.types.get(qualified) {
            Some(TypeDef::Structured(t)) => Some(t),
            _ => None,
        }
    }

    /// Looks a property up on the type and then on its base types.
    pub(crate) fn find_property<'a>(&'a self, start: &'a StructuredType, name: &str) -> Option<&'a Property> {
        let mut current = Some(start);
        for _ in 0..MAX_INHERITANCE_DEPTH {
            let structured = current?;
            if let Some(p) = structured.properties.get(name) {
                return Some(p);
            }
            current = structured.base.as_deref().and_then(|b| self.structured(b));
        }
        None
    }

    /// Whether the type or any base type is open (accepts dynamic properties).
    pub(crate) fn is_open(&self, start: &StructuredType) -> bool {
        let mut current = Some(start);
        for _ in 0..MAX_INHERITANCE_DEPTH {
            let Some(structured) = current else { return false };
            if structured.open {
                return true;
            }
            current = structured.base.as_deref().and_then(|b| self.structured(b));
        }
        false
    }

    /// Replaces a schema alias prefix by its namespace; `Edm.*` and unknown prefixes are kept.
    pub(crate) fn qualify(&self, name: &str) -> String {
        let name = name.trim();
        match name.rsplit_once('.') {
            Some((prefix, local)) => match self.aliases.get(prefix) {
                Some(namespace) => format!("{namespace}.{local}"),
                None => name.to_string(),
            },
            None => name.to_string(),
        }
    }

    pub(crate) fn type_ref(&self, raw: &str) -> TypeRef {
        let raw = raw.trim();
        match raw.strip_prefix("Collection(").and_then(|r| r.strip_suffix(')')) {
            Some(inner) => TypeRef {
                collection: true,
                name: self.qualify(inner),
            },
            None => TypeRef {
                collection: false,
                name: self.qualify(raw),
            },
        }
    }

    fn parse_container(&mut self, node: &roxmltree::Node<'_, '_>) -> Result<(), CsdlError> {
        for child in node.children().filter(roxmltree::Node::is_element) {
            let (type_attribute, singleton) = match child.tag_name().name() {
                "EntitySet" => ("EntityType", false),
                "Singleton" => ("Type", true),
                _ => continue,
            };
            let name = required_attribute(&child, "Name")?;
            let type_name = self.qualify(required_attribute(&child, type_attribute)?);
            self.container
                .insert(name.to_string(), ContainerMember { type_name, singleton });
        }
        Ok(())
    }

    fn parse_structured(
        &self,
        namespace: &str,
        kind: StructuredKind,
        node: &roxmltree::Node<'_, '_>,
    ) -> Result<StructuredType, CsdlError> {
        let name = format!("{namespace}.{}", required_attribute(node, "Name")?);
        let mut properties = HashMap::new();
        for child in node.children().filter(roxmltree::Node::is_element) {
            let navigation = match child.tag_name().name() {
                "Property" => false,
                "NavigationProperty" => true,
                _ => continue,
            };
            let property_name = required_attribute(&child, "Name")?;
            let raw_type = child
                .attribute("Type")
                .ok_or_else(|| CsdlError::Invalid(format!("property {name}.{property_name} has no Type")))?;
            // CSDL: Nullable defaults to true when absent.
            let nullable = child.attribute("Nullable") != Some("false");
            properties.insert(
                property_name.to_string(),
                Property {
                    type_ref: self.type_ref(raw_type),
                    nullable,
                    navigation,
                },
            );
        }
        Ok(StructuredType {
            name,
            kind,
            base: node.attribute("BaseType").map(|b| self.qualify(b)),
            open: node.attribute("OpenType") == Some("true"),
            properties,
        })
    }
}

fn parse_enum(node: &roxmltree::Node<'_, '_>) -> Result<EnumType, CsdlError> {
    let mut members = HashSet::new();
    for member in node.children().filter(|c| c.tag_name().name() == "Member") {
        members.insert(required_attribute(&member, "Name")?.to_string());
    }
    Ok(EnumType {
        members,
        flags: node.attribute("IsFlags") == Some("true"),
    })
}

fn required_attribute<'a>(node: &roxmltree::Node<'a, '_>, attribute: &str) -> Result<&'a str, CsdlError> {
    node.attribute(attribute).ok_or_else(|| {
        let position = node.document().text_pos_at(node.range().start);
        CsdlError::Invalid(format!(
            "<{}> at line {} lacks the {attribute} attribute",
            node.tag_name().name(),
            position.row
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"<?xml version="1.0"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>
  <Schema Namespace="example.ns" Alias="ex" xmlns="http://docs.oasis-open.org/odata/ns/edm">
    <EntityType Name="base" Abstract="true"><Property Name="id" Type="Edm.String" Nullable="false"/></EntityType>
    <EntityType Name="thing" BaseType="ex.base"><Property Name="tags" Type="Collection(Edm.String)"/></EntityType>
    <EntityContainer Name="Svc"><EntitySet Name="things" EntityType="ex.thing"/></EntityContainer>
  </Schema>
</edmx:DataServices></edmx:Edmx>"#;

    #[test]
    fn small_documents_load_with_aliases() {
        let schema = Schema::from_xml(&format!("\u{feff}{SMALL}")).unwrap();
        assert_eq!(schema.type_count(), 2);
        assert!(schema.derives_from("ex.thing", "example.ns.base"));
        assert_eq!(schema.entity_set_type("things"), Some("example.ns.thing"));
        assert_eq!(schema.property_names("example.ns.thing").unwrap(), ["id", "tags"]);
        assert!(
            schema
                .check("example.ns.thing", &serde_json::json!({"id": "1", "tags": null}))
                .is_empty()
        );
    }

    #[test]
    fn malformed_documents_are_errors() {
        assert!(matches!(Schema::from_xml("<not-closed"), Err(CsdlError::Xml(_))));
        assert!(matches!(
            Schema::from_xml("<edmx:Edmx xmlns:edmx=\"x\"/>"),
            Err(CsdlError::Invalid(_))
        ));
        let nameless = SMALL.replace(r#"EntityType Name="thing""#, "EntityType");
        let err = Schema::from_xml(&nameless).unwrap_err();
        assert!(err.to_string().contains("line"), "{err}");
        assert!(matches!(
            Schema::load("/nonexistent/metadata.xml"),
            Err(CsdlError::Io { .. })
        ));
    }
}
