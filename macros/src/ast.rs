//! The derive input, read: a struct with named fields, its `#[event]` attributes and its fields'
//! wire names ([`Parsed`]). Judging them is [`check`](crate::check)'s phase, which makes the
//! [`Input`] that [`expand`](crate::expand) writes the impl from; `lib.rs` runs the three in order.

use syn::{Data, DeriveInput, Expr, Fields, Ident, LitStr, Type};

use omnicast_runtime::names;

use crate::attr::{self, Errors, FieldAttrs, Roles, StructAttrs};

/// The derive input, checked: what [`expand`](crate::expand) writes the impl from.
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

/// A field as the struct declares it, with its wire name.
pub struct Field<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
    pub wire: String,
}

/// The derive input read but not yet judged: what [`check::input`](crate::check::input) checks.
pub struct Parsed<'a> {
    pub ident: &'a Ident,
    pub attrs: StructAttrs,
    pub description: String,
    pub fields: Vec<Field<'a>>,
    pub computed: Vec<Computed<'a>>,
    pub errors: Errors,
}

impl<'a> Parsed<'a> {
    /// Reads the struct; an error only for input that is not a struct with named fields (every
    /// other problem is collected in `errors` for the check phase to report).
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

        Ok(Parsed {
            ident: &input.ident,
            attrs,
            description: attr::doc_text(&input.attrs),
            fields: all_fields,
            computed,
            errors,
        })
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
