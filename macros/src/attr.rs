//! Parsing of `#[event(...)]` attributes; every problem is collected, none stops the parse.

use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Ident, LitStr, Path, Token};

/// Errors collected over a whole input, reported together (serde's `Ctxt`).
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub fn spanned(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// The roles an event is visible to, as written.
pub enum Roles {
    /// `roles(all)`.
    All,
    /// `roles(Role::Admin, ...)`: enum variants.
    Listed(Vec<Path>),
}

/// The struct-level `#[event(...)]` keys.
#[derive(Default)]
pub struct StructAttrs {
    pub name: Option<LitStr>,
    pub namespace: Option<LitStr>,
    pub roles: Option<Roles>,
    pub owner: Option<Ident>,
    pub target_roles: Option<Ident>,
}

const STRUCT_KEYS: &str = "`name`, `namespace`, `roles`, `owner`, `target_roles`";

impl StructAttrs {
    pub fn parse(attrs: &[Attribute], errors: &mut Errors) -> Self {
        let mut out = StructAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("event")) {
            let result = attr.parse_nested_meta(|meta| {
                let key = meta.path.get_ident().map(Ident::to_string);
                match key.as_deref() {
                    Some("name") => set(&mut out.name, meta.value()?.parse()?, &meta.path, errors),
                    Some("namespace") => set(
                        &mut out.namespace,
                        meta.value()?.parse()?,
                        &meta.path,
                        errors,
                    ),
                    Some("owner") => {
                        set(&mut out.owner, meta.value()?.parse()?, &meta.path, errors)
                    }
                    Some("target_roles") => set(
                        &mut out.target_roles,
                        meta.value()?.parse()?,
                        &meta.path,
                        errors,
                    ),
                    Some("roles") => {
                        let content;
                        syn::parenthesized!(content in meta.input);
                        let list = Punctuated::<Path, Token![,]>::parse_terminated(&content)?;
                        let roles = if list.len() == 1 && list[0].is_ident("all") {
                            Roles::All
                        } else {
                            Roles::Listed(list.into_iter().collect())
                        };
                        set(&mut out.roles, roles, &meta.path, errors);
                    }
                    _ => {
                        // Skip the value so the remaining keys are still checked.
                        if meta.input.peek(Token![=]) {
                            meta.value()?.parse::<Expr>()?;
                        } else if meta.input.peek(syn::token::Paren) {
                            let _content;
                            syn::parenthesized!(_content in meta.input);
                        }
                        errors.spanned(
                            &meta.path,
                            format!(
                                "unknown event attribute `{}`; expected one of {STRUCT_KEYS}",
                                path_text(&meta.path)
                            ),
                        );
                    }
                }
                Ok(())
            });
            if let Err(err) = result {
                errors.push(err);
            }
        }
        out
    }
}

/// The field-level `#[event(...)]` keys.
#[derive(Default)]
pub struct FieldAttrs {
    /// An expression over `self` giving `Option<T>` for an `Option<T>` field: `None` when the
    /// result does not fit.
    pub computed: Option<Expr>,
    /// The formula as the catalog writes it, for error messages.
    pub formula: Option<LitStr>,
}

impl FieldAttrs {
    pub fn parse(attrs: &[Attribute], errors: &mut Errors) -> Self {
        let mut out = FieldAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("event")) {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("computed") {
                    set(
                        &mut out.computed,
                        meta.value()?.parse()?,
                        &meta.path,
                        errors,
                    );
                } else if meta.path.is_ident("formula") {
                    set(&mut out.formula, meta.value()?.parse()?, &meta.path, errors);
                } else {
                    if meta.input.peek(Token![=]) {
                        meta.value()?.parse::<Expr>()?;
                    }
                    errors.spanned(
                        &meta.path,
                        format!(
                            "unknown event field attribute `{}`; expected `computed` or `formula`",
                            path_text(&meta.path)
                        ),
                    );
                }
                Ok(())
            });
            if let Err(err) = result {
                errors.push(err);
            }
        }
        out
    }
}

fn set<T>(slot: &mut Option<T>, value: T, key: &Path, errors: &mut Errors) {
    if slot.is_some() {
        errors.push(syn::Error::new(
            key.span(),
            format!("duplicate event attribute `{}`", path_text(key)),
        ));
    } else {
        *slot = Some(value);
    }
}

fn path_text(path: &Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// The doc comment's text, lines joined by spaces.
pub fn doc_text(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("doc")) {
        if let syn::Meta::NameValue(nv) = &attr.meta
            && let Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
        {
            let line = s.value();
            let line = line.trim();
            if !line.is_empty() {
                lines.push(line.to_owned());
            }
        }
    }
    lines.join(" ")
}

/// The `rename_all` rule of `#[serde(...)]` on a struct, if any.
pub fn serde_rename_all(attrs: &[Attribute]) -> Option<LitStr> {
    serde_string(attrs, "rename_all")
}

/// The `rename` of `#[serde(...)]` on a field, if any.
pub fn serde_rename(attrs: &[Attribute]) -> Option<LitStr> {
    serde_string(attrs, "rename")
}

fn serde_string(attrs: &[Attribute], key: &str) -> Option<LitStr> {
    let mut found = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        // Other serde keys are serde's business; only `key = "..."` is read here.
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(key) && meta.input.peek(Token![=]) {
                found = Some(meta.value()?.parse::<LitStr>()?);
            } else if meta.input.peek(Token![=]) {
                meta.value()?.parse::<Expr>()?;
            } else if meta.input.peek(syn::token::Paren) {
                let _content;
                syn::parenthesized!(_content in meta.input);
            }
            Ok(())
        });
    }
    found
}
