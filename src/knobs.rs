//! Each builder's plain knobs, written once.
//!
//! The knobs of a builder that are plain values (counts, durations, rates, seeds) are listed
//! once, with [`knobs!`], and everything that repeats them is written from that list:
//!
//! - the `Knobs` struct the builder keeps them in (one field, so a setter that changes one of
//!   the builder's type parameters moves them in one piece) and its `Default`, the defaults;
//! - one setter per knob on the builder, which stores the value, and the knobs' part of the
//!   builder's `Debug`;
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
            {} {} {} {} {} {} {}
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
            {} {} {} {} {} {} {}
            $($entries)*
        }
    };

    // One entry at a time, into seven lists: the knob fields, their defaults, the setters, the
    // spec's fields, the knobs a spec stores as they are or wrapped in `Some`, and the knobs
    // with a written setter (for `Debug`; a hand-set field may not be `Debug`).

    // A spec field written out in full.
    (
        @munch $head:tt {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:tt)*} {$($o:tt)*}
        {$($n:tt)*}
        $(#[$m:meta])* pub $name:ident : $ty:ty, $($rest:tt)*
    ) => {
        $crate::knobs::knobs! {
            @munch $head {$($f)*} {$($d)*} {$($s)*}
            {$($p)* $(#[$m])* pub $name: $ty,}
            {$($v)*} {$($o)*} {$($n)*}
            $($rest)*
        }
    };
    // A field whose setter is written by hand.
    (
        @munch $head:tt {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:tt)*} {$($o:tt)*}
        {$($n:tt)*}
        $(#[$m:meta])* manual $name:ident : $ty:ty = $default:expr, $($rest:tt)*
    ) => {
        $crate::knobs::knobs! {
            @munch $head
            {$($f)* $(#[$m])* $name: $ty,}
            {$($d)* $name: $default,}
            {$($s)*} {$($p)*} {$($v)*} {$($o)*} {$($n)*}
            $($rest)*
        }
    };
    // Knobs for code only: a setter, no spec field.
    (
        @munch $head:tt {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:tt)*} {$($o:tt)*}
        {$($n:tt)*}
        $(#[$m:meta])* code $name:ident : Option<$ty:ty> = None, $($rest:tt)*
    ) => {
        $crate::knobs::knobs! {
            @munch $head
            {$($f)* $(#[$m])* $name: ::core::option::Option<$ty>,}
            {$($d)* $name: ::core::option::Option::None,}
            {$($s)* $crate::knobs::knobs!(@some $(#[$m])* $name: $ty);}
            {$($p)*} {$($v)*} {$($o)*} {$($n)* $name}
            $($rest)*
        }
    };
    (
        @munch $head:tt {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:tt)*} {$($o:tt)*}
        {$($n:tt)*}
        $(#[$m:meta])* code $name:ident : $ty:ty = $default:expr, $($rest:tt)*
    ) => {
        $crate::knobs::knobs! {
            @munch $head
            {$($f)* $(#[$m])* $name: $ty,}
            {$($d)* $name: $default,}
            {$($s)* $crate::knobs::knobs!(@plain $(#[$m])* $name: $ty);}
            {$($p)*} {$($v)*} {$($o)*} {$($n)* $name}
            $($rest)*
        }
    };
    // Knobs unset by default: the setter stores `Some`.
    (
        @munch $head:tt {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:tt)*} {$($o:tt)*}
        {$($n:tt)*}
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
            {$($v)*} {$($o)* $name} {$($n)* $name}
            $($rest)*
        }
    };
    (
        @munch $head:tt {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:tt)*} {$($o:tt)*}
        {$($n:tt)*}
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
            {$($v)*} {$($o)* $name} {$($n)* $name}
            $($rest)*
        }
    };
    // Knobs with a default value.
    (
        @munch $head:tt {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:tt)*} {$($o:tt)*}
        {$($n:tt)*}
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
            {$($v)* $name} {$($o)*} {$($n)* $name}
            $($rest)*
        }
    };
    (
        @munch $head:tt {$($f:tt)*} {$($d:tt)*} {$($s:tt)*} {$($p:tt)*} {$($v:tt)*} {$($o:tt)*}
        {$($n:tt)*}
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
            {$($v)* $name} {$($o)*} {$($n)* $name}
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
        {$($n:ident)*}
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

        impl $Knobs {
            /// Add every knob with a written setter to `d`, for the builder's `Debug`.
            #[allow(dead_code)]
            fn debug_fields(&self, d: &mut ::core::fmt::DebugStruct<'_, '_>) {
                $( d.field(::core::stringify!($n), &self.$n); )*
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[derive(Default)]
    pub(super) struct Builder<C> {
        code: C,
        knobs: Knobs,
    }

    knobs! {
        /// A toy builder's knobs.
        #[derive(Clone)]
        struct Knobs;

        impl<C> Builder<C>;

        /// A toy spec.
        #[derive(Debug, Default, PartialEq)]
        pub struct Spec;

        /// Attempts.
        attempts: u32 = 3,
        /// A deadline.
        deadline: Option<Duration> = None,
        /// A wait.
        wait: Duration = Duration::from_secs(1),
        /// A nested table, read by hand.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub nested: Option<u8>,
        /// A seed for code only.
        code seed: Option<u64> = None,
        manual name: String = "toy".to_string(),
    }

    #[test]
    fn setters_store_and_defaults_hold() {
        let b = Builder::<()>::default()
            .attempts(5)
            .deadline(Duration::from_secs(2));
        assert_eq!(b.knobs.attempts, 5);
        assert_eq!(b.knobs.deadline, Some(Duration::from_secs(2)));
        assert_eq!(b.knobs.wait, Duration::from_secs(1));
        assert_eq!(b.knobs.seed, None);
        assert_eq!(
            b.clone_knobs().wait(Duration::ZERO).knobs.wait,
            Duration::ZERO
        );
        assert_eq!(b.knobs.name, "toy");
        assert_eq!(b.seed(7).knobs.seed, Some(7));
        assert_eq!(Builder::<u8>::default().code, 0);
    }

    impl<C> Builder<C> {
        fn clone_knobs(&self) -> Builder<()> {
            Builder {
                code: (),
                knobs: self.knobs.clone(),
            }
        }
    }

    #[test]
    fn debug_lists_the_knobs_with_setters() {
        struct Shown(Knobs);
        impl std::fmt::Debug for Shown {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut d = f.debug_struct("Builder");
                self.0.debug_fields(&mut d);
                d.finish_non_exhaustive()
            }
        }
        assert_eq!(
            format!("{:?}", Shown(Knobs::default())),
            "Builder { attempts: 3, deadline: None, wait: 1s, seed: None, .. }"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_spec_stores_only_what_it_gives() {
        let spec: Spec = serde_json::from_str(r#"{ "deadline": "5s", "nested": 1 }"#).unwrap();
        assert_eq!(spec.nested, Some(1));
        let b = spec.set_knobs(Builder::<()>::default().attempts(9));
        assert_eq!(b.knobs.attempts, 9); // left out: the builder's value stays
        assert_eq!(b.knobs.deadline, Some(Duration::from_secs(5)));
        assert_eq!(b.knobs.name, "toy");
        let err = serde_json::from_str::<Spec>(r#"{ "seed": 1 }"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `seed`"), "{err}");
        assert_eq!(
            serde_json::to_string(&Spec {
                wait: Some(Duration::from_millis(250)),
                ..Spec::default()
            })
            .unwrap(),
            r#"{"wait":"250ms"}"#
        );
    }
}
