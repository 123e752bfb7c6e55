//! Each builder's plain knobs, written once.
//!
//! The knobs of a builder that are plain values (counts, durations, rates, seeds) are listed
//! once, with [`knobs!`], and everything that repeats them is written from that list:
//!
//! - the `Knobs` struct the builder keeps them in (one field, so a setter that changes one of
//!   the builder's type parameters moves them in one piece) and its `Default`, the defaults;
//! - one setter per knob on the builder, which stores the value;
//! - with the `serde` feature, the spec read from config files: one optional field per knob
//!   (a knob left out keeps the builder's default; durations are human-readable; unknown
//!   fields are refused), and its `set_knobs`, which stores the fields a file gave.
//!
//! Checks stay in the builder's `build()`, the one place a value is judged, so a file and code
//! are refused alike and with the same knob named. Adding a knob is one entry in its list and,
//! if it has a rule, one check in `build()`.

/// Lists a builder's knobs. The header names the struct that holds them, the builder whose
/// setters they become, and the spec; each entry is a knob, documented as its setter:
///
/// | entry | knob field | setter | spec field |
/// |---|---|---|---|
/// | `name: T = default,` | `T` | `name(T)` | `Option<T>` |
/// | `name: Option<T> = None,` | `Option<T>`, unset by default | `name(T)` stores `Some` | `Option<T>` |
/// | `code name: T = default,` (or `Option<T> = None`) | as above | as above | none: a knob for code only |
/// | `manual name: T = default,` | `T` | written by hand | none |
/// | `pub name: T,` (with its own `#[serde]`) | none | none | `name: T`, verbatim: a nested spec, or a knob the spec reads in its own way |
///
/// A `Duration` (written so) is read and written in a spec as a human duration (`"250ms"`).
/// Spec fields keep the order of the list.
///
/// ```ignore
/// knobs! {
///     /// The plain knobs.
///     #[derive(Clone)]
///     struct Knobs;
///
///     impl<C> ThingBuilder<C>;
///
///     /// A thing as plain data.
///     #[derive(Debug, Clone, PartialEq, Default)]
///     pub struct ThingSpec;
///
///     /// Attempts in all (default 3).
///     max_attempts: u32 = 3,
///     /// The time it may take (default none).
///     deadline: Option<Duration> = None,
/// }
/// ```
macro_rules! knobs {
    (
        $(#[$kmeta:meta])*
        $kvis:vis struct $Knobs:ident;

        impl<$($g:ident),*> $Builder:ty;

        $(#[$smeta:meta])*
        $svis:vis struct $Spec:ident;

        $($entries:tt)*
    ) => {
        $crate::knobs::knobs! {
            @munch
            [
                $(#[$kmeta])* $kvis struct $Knobs;
                [$($g),*] $Builder;
                $(#[$smeta])* $svis struct $Spec;
            ]
            {} {} {} {} {} {}
            $($entries)*
        }
    };
    (
        $(#[$kmeta:meta])*
        $kvis:vis struct $Knobs:ident;

        impl $Builder:ty;

        $(#[$smeta:meta])*
        $svis:vis struct $Spec:ident;

        $($entries:tt)*
    ) => {
        $crate::knobs::knobs! {
            @munch
            [
                $(#[$kmeta])* $kvis struct $Knobs;
                [] $Builder;
                $(#[$smeta])* $svis struct $Spec;
            ]
            {} {} {} {} {} {}
            $($entries)*
        }
    };

    // One entry at a time, into six lists: the knob fields, their defaults, the setters, the
    // spec's fields, and the knobs a spec stores as they are or wrapped in `Some`.

    // A spec field written out in full.
    (
        @munch $head:tt {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:tt)*} {$($o:tt)*}
        $(#[$m:meta])* pub $name:ident : $ty:ty, $($rest:tt)*
    ) => {
        $crate::knobs::knobs! {
            @munch $head {$($f)*} {$($d)*} {$($s)*}
            {$($p)* $(#[$m])* pub $name: $ty,}
            {$($v)*} {$($o)*}
            $($rest)*
        }
    };
    // A field whose setter is written by hand.
    (
        @munch $head:tt {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:tt)*} {$($o:tt)*}
        $(#[$m:meta])* manual $name:ident : $ty:ty = $default:expr, $($rest:tt)*
    ) => {
        $crate::knobs::knobs! {
            @munch $head
            {$($f)* $(#[$m])* $name: $ty,}
            {$($d)* $name: $default,}
            {$($s)*} {$($p)*} {$($v)*} {$($o)*}
            $($rest)*
        }
    };
    // Knobs for code only: a setter, no spec field.
    (
        @munch $head:tt {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:tt)*} {$($o:tt)*}
        $(#[$m:meta])* code $name:ident : Option<$ty:ty> = None, $($rest:tt)*
    ) => {
        $crate::knobs::knobs! {
            @munch $head
            {$($f)* $(#[$m])* $name: ::core::option::Option<$ty>,}
            {$($d)* $name: ::core::option::Option::None,}
            {$($s)* $crate::knobs::knobs!(@some $(#[$m])* $name: $ty);}
            {$($p)*} {$($v)*} {$($o)*}
            $($rest)*
        }
    };
    (
        @munch $head:tt {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:tt)*} {$($o:tt)*}
        $(#[$m:meta])* code $name:ident : $ty:ty = $default:expr, $($rest:tt)*
    ) => {
        $crate::knobs::knobs! {
            @munch $head
            {$($f)* $(#[$m])* $name: $ty,}
            {$($d)* $name: $default,}
            {$($s)* $crate::knobs::knobs!(@plain $(#[$m])* $name: $ty);}
            {$($p)*} {$($v)*} {$($o)*}
            $($rest)*
        }
    };
    // Knobs unset by default: the setter stores `Some`.
    (
        @munch $head:tt {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:tt)*} {$($o:tt)*}
        $(#[$m:meta])* $name:ident : Option<Duration> = None, $($rest:tt)*
    ) => {
        $crate::knobs::knobs! {
            @munch $head
            {$($f)* $(#[$m])* $name: ::core::option::Option<::std::time::Duration>,}
            {$($d)* $name: ::core::option::Option::None,}
            {$($s)* $crate::knobs::knobs!(@some $(#[$m])* $name: ::std::time::Duration);}
            {
                $($p)*
                $(#[$m])*
                #[serde(
                    default,
                    with = "crate::config::duration::option",
                    skip_serializing_if = "Option::is_none"
                )]
                pub $name: ::core::option::Option<::std::time::Duration>,
            }
            {$($v)*} {$($o)* $name}
            $($rest)*
        }
    };
    (
        @munch $head:tt {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:tt)*} {$($o:tt)*}
        $(#[$m:meta])* $name:ident : Option<$ty:ty> = None, $($rest:tt)*
    ) => {
        $crate::knobs::knobs! {
            @munch $head
            {$($f)* $(#[$m])* $name: ::core::option::Option<$ty>,}
            {$($d)* $name: ::core::option::Option::None,}
            {$($s)* $crate::knobs::knobs!(@some $(#[$m])* $name: $ty);}
            {
                $($p)*
                $(#[$m])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $name: ::core::option::Option<$ty>,
            }
            {$($v)*} {$($o)* $name}
            $($rest)*
        }
    };
    // Knobs with a default value.
    (
        @munch $head:tt {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:tt)*} {$($o:tt)*}
        $(#[$m:meta])* $name:ident : Duration = $default:expr, $($rest:tt)*
    ) => {
        $crate::knobs::knobs! {
            @munch $head
            {$($f)* $(#[$m])* $name: ::std::time::Duration,}
            {$($d)* $name: $default,}
            {$($s)* $crate::knobs::knobs!(@plain $(#[$m])* $name: ::std::time::Duration);}
            {
                $($p)*
                $(#[$m])*
                #[serde(
                    default,
                    with = "crate::config::duration::option",
                    skip_serializing_if = "Option::is_none"
                )]
                pub $name: ::core::option::Option<::std::time::Duration>,
            }
            {$($v)* $name} {$($o)*}
            $($rest)*
        }
    };
    (
        @munch $head:tt {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:tt)*} {$($o:tt)*}
        $(#[$m:meta])* $name:ident : $ty:ty = $default:expr, $($rest:tt)*
    ) => {
        $crate::knobs::knobs! {
            @munch $head
            {$($f)* $(#[$m])* $name: $ty,}
            {$($d)* $name: $default,}
            {$($s)* $crate::knobs::knobs!(@plain $(#[$m])* $name: $ty);}
            {
                $($p)*
                $(#[$m])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $name: ::core::option::Option<$ty>,
            }
            {$($v)* $name} {$($o)*}
            $($rest)*
        }
    };

    // Every entry read: write it all out.
    (
        @munch
        [
            $(#[$kmeta:meta])* $kvis:vis struct $Knobs:ident;
            [$($g:ident),*] $Builder:ty;
            $(#[$smeta:meta])* $svis:vis struct $Spec:ident;
        ]
        {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:ident)*} {$($o:ident)*}
    ) => {
        $(#[$kmeta])*
        $kvis struct $Knobs {
            $($f)*
        }

        impl ::core::default::Default for $Knobs {
            fn default() -> Self {
                $Knobs { $($d)* }
            }
        }

        impl<$($g),*> $Builder {
            $($s)*
        }

        #[cfg(feature = "serde")]
        $(#[$smeta])*
        #[derive(serde::Deserialize, serde::Serialize)]
        #[serde(deny_unknown_fields)]
        $svis struct $Spec {
            $($p)*
        }

        #[cfg(feature = "serde")]
        impl $Spec {
            /// Store the knobs this spec gives on `builder`; the others keep its values.
            #[allow(unused_mut)]
            pub(crate) fn set_knobs<$($g),*>(&self, mut builder: $Builder) -> $Builder {
                $(
                    if let ::core::option::Option::Some(v) = &self.$v {
                        builder.knobs.$v = ::core::clone::Clone::clone(v);
                    }
                )*
                $(
                    if let ::core::option::Option::Some(v) = &self.$o {
                        builder.knobs.$o =
                            ::core::option::Option::Some(::core::clone::Clone::clone(v));
                    }
                )*
                builder
            }
        }
    };

    // The setters.
    (@plain $(#[$m:meta])* $name:ident : $ty:ty) => {
        $(#[$m])*
        pub fn $name(mut self, $name: $ty) -> Self {
            self.knobs.$name = $name;
            self
        }
    };
    (@some $(#[$m:meta])* $name:ident : $ty:ty) => {
        $(#[$m])*
        pub fn $name(mut self, $name: $ty) -> Self {
            self.knobs.$name = ::core::option::Option::Some($name);
            self
        }
    };
}

pub(crate) use knobs;
