//! Generates the `Event` impl from a checked input.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::Input;
use crate::attr::Roles;

pub fn event_impl(input: &Input<'_>) -> TokenStream {
    let ident = input.ident;
    let name = &input.name;
    let namespace = &input.namespace;
    let description = &input.description;
    let roles = match &input.roles {
        Roles::All => quote!(::omnicast_runtime::RoleMask::ALL),
        Roles::Listed(roles) => quote! {
            ::omnicast_runtime::RoleMask::from_bits(0 #( | (1u64 << (#roles as u32)) )*)
        },
    };
    let (owner_field, owner_fn) = match &input.owner {
        Some(owner) => {
            let (field, wire) = (owner.ident, &owner.wire);
            (
                quote!(::core::option::Option::Some(#wire)),
                quote!(::core::option::Option::Some(::core::convert::AsRef::<str>::as_ref(&self.#field))),
            )
        }
        None => (
            quote!(::core::option::Option::None),
            quote!(::core::option::Option::None),
        ),
    };
    let (target_field, target_fn) = match &input.target_roles {
        Some(target) => {
            let (field, wire) = (target.ident, &target.wire);
            (
                quote!(::core::option::Option::Some(#wire)),
                quote!(self.#field.as_ref().map(|roles| roles.iter().copied().collect())),
            )
        }
        None => (
            quote!(::core::option::Option::None),
            quote!(::core::option::Option::None),
        ),
    };
    let compute = if input.computed.is_empty() {
        quote!()
    } else {
        let steps = input.computed.iter().map(|c| {
            let (field, expr, wire, formula) = (c.ident, &c.expr, &c.wire, &c.formula);
            quote! {
                let value = (#expr).ok_or(::omnicast_runtime::ComputeError::Overflow {
                    field: #wire,
                    formula: #formula,
                })?;
                // No let chains: the expansion compiles in the deriving crate's edition.
                match (sent, &self.#field) {
                    (::omnicast_runtime::SentValues::Verify, ::core::option::Option::Some(given))
                        if *given != value =>
                    {
                        return ::core::result::Result::Err(
                            ::omnicast_runtime::ComputeError::Mismatch {
                                field: #wire,
                                formula: #formula,
                                expected: ::std::string::ToString::to_string(&value),
                                sent: ::std::string::ToString::to_string(given),
                            },
                        );
                    }
                    _ => {}
                }
                self.#field = ::core::option::Option::Some(value);
            }
        });
        quote! {
            fn compute(
                &mut self,
                sent: ::omnicast_runtime::SentValues,
            ) -> ::core::result::Result<(), ::omnicast_runtime::ComputeError> {
                #(#steps)*
                ::core::result::Result::Ok(())
            }
        }
    };

    quote! {
        #[automatically_derived]
        impl ::omnicast_runtime::Event for #ident {
            const DESCRIPTOR: ::omnicast_runtime::EventDescriptor =
                ::omnicast_runtime::EventDescriptor {
                    name: #name,
                    namespace: #namespace,
                    description: #description,
                    roles: #roles,
                    owner_field: #owner_field,
                    target_roles_field: #target_field,
                };

            fn owner(&self) -> ::core::option::Option<&str> {
                #owner_fn
            }

            fn target_roles(&self) -> ::core::option::Option<::omnicast_runtime::RoleMask> {
                #target_fn
            }

            #compute
        }
    }
}
