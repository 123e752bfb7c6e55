use super::{ByError, Class, Classify};

/// Combinators for riprap's classifiers.
///
/// Implemented for every classifier type riprap ships. Implement it (an empty `impl` is enough)
/// for your own classifier types to get the same combinators.
///
/// ```
/// use riprap::classify::{ByError, Class, Classify, ClassifierExt};
/// use std::io;
///
/// // Treat "not found" as transient for an eventually-consistent store.
/// let classifier = ByError.when(
///     |out: Result<&(), &io::Error>| matches!(out, Err(e) if e.kind() == io::ErrorKind::NotFound),
///     Class::Transient,
/// );
/// let missing = io::Error::from(io::ErrorKind::NotFound);
/// assert_eq!(classifier.classify(Err(&missing)), Class::Transient);
/// ```
pub trait ClassifierExt: Sized {
    /// Ask `self` first; where it sees nothing wrong ([`Class::Success`]), ask `other`.
    ///
    /// The first failure verdict wins, so `a.or(b)` treats an outcome as a failure if either
    /// classifier does — like "handle this *or* that" in Polly's predicate builder.
    fn or<B>(self, other: B) -> Or<Self, B> {
        Or {
            first: self,
            second: other,
        }
    }

    /// Rewrite every verdict through `f`.
    fn map_class<F>(self, f: F) -> MapClass<Self, F>
    where
        F: Fn(Class) -> Class,
    {
        MapClass { inner: self, f }
    }

    /// Where `predicate` holds for the outcome, answer `class` instead of asking `self`.
    fn when<P>(self, predicate: P, class: Class) -> When<Self, P> {
        When {
            inner: self,
            predicate,
            class,
        }
    }
}

/// The first failure verdict of two classifiers; see [`ClassifierExt::or`].
#[derive(Clone, Copy, Debug)]
pub struct Or<A, B> {
    first: A,
    second: B,
}

impl<A, B, Res, Err> Classify<Res, Err> for Or<A, B>
where
    A: Classify<Res, Err>,
    B: Classify<Res, Err>,
{
    fn classify(&self, outcome: Result<&Res, &Err>) -> Class {
        match self.first.classify(outcome) {
            Class::Success => self.second.classify(outcome),
            verdict => verdict,
        }
    }
}

/// A classifier whose verdicts are rewritten; see [`ClassifierExt::map_class`].
#[derive(Clone, Copy, Debug)]
pub struct MapClass<C, F> {
    inner: C,
    f: F,
}

impl<C, F, Res, Err> Classify<Res, Err> for MapClass<C, F>
where
    C: Classify<Res, Err>,
    F: Fn(Class) -> Class,
{
    fn classify(&self, outcome: Result<&Res, &Err>) -> Class {
        (self.f)(self.inner.classify(outcome))
    }
}

/// A classifier with an override; see [`ClassifierExt::when`].
#[derive(Clone, Copy, Debug)]
pub struct When<C, P> {
    inner: C,
    predicate: P,
    class: Class,
}

impl<C, P, Res, Err> Classify<Res, Err> for When<C, P>
where
    C: Classify<Res, Err>,
    P: Fn(Result<&Res, &Err>) -> bool,
{
    fn classify(&self, outcome: Result<&Res, &Err>) -> Class {
        if (self.predicate)(outcome) {
            self.class
        } else {
            self.inner.classify(outcome)
        }
    }
}

impl<A, B> ClassifierExt for Or<A, B> {}
impl<C, F> ClassifierExt for MapClass<C, F> {}
impl<C, P> ClassifierExt for When<C, P> {}
impl ClassifierExt for ByError {}
