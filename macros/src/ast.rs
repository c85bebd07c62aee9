//! The derive input, checked: a struct with named fields and well-formed `#[event]` attributes.

use syn::{Data, DeriveInput, Expr, Fields, GenericArgument, Ident, LitStr, PathArguments, Type};

use omnicast_runtime::names;

use crate::attr::{self, Errors, FieldAttrs, Roles, StructAttrs};

pub struct Input<'a> {
    pub ident: &'a Ident,
    pub name: LitStr,
    pub namespace: LitStr,
    pub description: String,
    pub roles: Roles,
    pub owner: Option<FieldRef<'a>>,
    pub target_roles: Option<FieldRef<'a>>,
    pub computed: Vec<Computed<'a>>,
}

/// A field whose value the payload computes.
pub struct Computed<'a> {
    pub ident: &'a Ident,
    pub wire: String,
    pub expr: Expr,
    /// The formula's text for messages: the catalog's, or the expression's tokens.
    pub formula: String,
}

/// A field named by a struct attribute: its Rust name and its wire name.
pub struct FieldRef<'a> {
    pub ident: &'a Ident,
    pub wire: String,
}

struct Field<'a> {
    ident: &'a Ident,
    ty: &'a Type,
    wire: String,
}

impl<'a> Input<'a> {
    pub fn from_syn(input: &'a DeriveInput) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => &named.named,
                _ => {
                    return Err(syn::Error::new_spanned(
                        &input.ident,
                        "#[derive(Event)] needs a struct with named fields",
                    ));
                }
            },
            _ => {
                return Err(syn::Error::new_spanned(
                    &input.ident,
                    "#[derive(Event)] is for payload structs, not enums or unions",
                ));
            }
        };

        let attrs = StructAttrs::parse(&input.attrs, &mut errors);
        let rename_all = attr::serde_rename_all(&input.attrs);
        let camel_case = match &rename_all {
            None => false,
            Some(rule) if rule.value() == "camelCase" => true,
            Some(rule) if rule.value() == "snake_case" => false,
            Some(rule) => {
                errors.spanned(
                    rule,
                    "#[derive(Event)] supports `rename_all = \"camelCase\"` or `\"snake_case\"`",
                );
                false
            }
        };

        let mut all_fields = Vec::new();
        let mut computed = Vec::new();
        for field in fields {
            let ident = field.ident.as_ref().expect("named fields have names");
            let wire = match attr::serde_rename(&field.attrs) {
                Some(rename) => rename.value(),
                None if camel_case => names::serde_camel(&ident.unraw_string()),
                None => ident.unraw_string(),
            };
            let field_attrs = FieldAttrs::parse(&field.attrs, &mut errors);
            if let Some(expr) = field_attrs.computed {
                let formula = field_attrs.formula.map_or_else(
                    || quote::ToTokens::to_token_stream(&expr).to_string(),
                    |f| f.value(),
                );
                computed.push(Computed {
                    ident,
                    wire: wire.clone(),
                    expr,
                    formula,
                });
            }
            all_fields.push(Field {
                ident,
                ty: &field.ty,
                wire,
            });
        }

        if let Some(name) = &attrs.name
            && !names::is_event_name(&name.value())
        {
            errors.spanned(
                name,
                format!(
                    "event name `{}` must be `namespace:action` in snake_case, like `order:created`",
                    name.value()
                ),
            );
        }
        let owner = attrs.owner.as_ref().and_then(|owner| {
            let field = find_field(&all_fields, owner, &mut errors)?;
            if !is_path_to(field.ty, "String") {
                errors.spanned(
                    field.ty,
                    format!("owner field `{owner}` must be a `String` (the owner's user id)"),
                );
            }
            Some(FieldRef {
                ident: field.ident,
                wire: field.wire.clone(),
            })
        });
        let target_roles = attrs.target_roles.as_ref().and_then(|target| {
            let field = find_field(&all_fields, target, &mut errors)?;
            if option_vec_item(field.ty).is_none() {
                errors.spanned(
                    field.ty,
                    format!("target roles field `{target}` must be an `Option<Vec<Role>>`"),
                );
            }
            Some(FieldRef {
                ident: field.ident,
                wire: field.wire.clone(),
            })
        });

        let missing = |key: &str, example: &str| {
            syn::Error::new_spanned(
                &input.ident,
                format!("missing `{key}`: add `#[event({key} = {example})]`"),
            )
        };
        if attrs.name.is_none() {
            errors.push(missing("name", "\"namespace:action\""));
        }
        if attrs.namespace.is_none() {
            errors.push(missing("namespace", "\"orders\""));
        }
        if attrs.roles.is_none() {
            errors.push(syn::Error::new_spanned(
                &input.ident,
                "missing `roles`: add `#[event(roles(Role::Admin, ...))]` or `roles(all)`",
            ));
        }
        errors.finish()?;

        Ok(Input {
            ident: &input.ident,
            name: attrs.name.expect("checked above"),
            namespace: attrs.namespace.expect("checked above"),
            description: attr::doc_text(&input.attrs),
            roles: attrs.roles.expect("checked above"),
            owner,
            target_roles,
            computed,
        })
    }
}

fn find_field<'f, 'a>(
    fields: &'f [Field<'a>],
    wanted: &Ident,
    errors: &mut Errors,
) -> Option<&'f Field<'a>> {
    let found = fields.iter().find(|f| *f.ident == *wanted);
    if found.is_none() {
        let names = fields
            .iter()
            .map(|f| format!("`{}`", f.ident))
            .collect::<Vec<_>>()
            .join(", ");
        errors.spanned(
            wanted,
            format!("no field `{wanted}` in this struct; its fields are {names}"),
        );
    }
    found
}

/// Whether `ty` is a plain path ending in `last` (`String`, `std::string::String`).
fn is_path_to(ty: &Type, last: &str) -> bool {
    match ty {
        Type::Path(p) => {
            p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == last)
        }
        _ => false,
    }
}

/// For `Option<Vec<T>>`, `T`.
fn option_vec_item(ty: &Type) -> Option<&Type> {
    let inner = generic_arg(ty, "Option")?;
    generic_arg(inner, "Vec")
}

fn generic_arg<'t>(ty: &'t Type, wrapper: &str) -> Option<&'t Type> {
    let Type::Path(p) = ty else { return None };
    let segment = p.path.segments.last()?;
    if segment.ident != wrapper {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

trait UnrawString {
    fn unraw_string(&self) -> String;
}

impl UnrawString for Ident {
    fn unraw_string(&self) -> String {
        let s = self.to_string();
        s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
    }
}
