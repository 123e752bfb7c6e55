use super::{Class, Classify};

/// An error type a layer wraps around the error of the service below it: either the inner
/// error, untouched, or the layer's own failure with its own verdict.
///
/// riprap's wrapper errors ([`TimeoutError`](crate::timeout::TimeoutError),
/// [`BreakerError`](crate::breaker::BreakerError), [`RetryError`](crate::retry::RetryError))
/// implement it, so one classifier written for your client's error type can classify outcomes
/// at every depth of a stack through [`Through`].
pub trait LayerError {
    /// The error of the service below.
    type Inner;

    /// The inner error, or the layer's own verdict when the failure is the layer's.
    fn layer_class(&self) -> Result<&Self::Inner, Class>;
}

/// A classifier for `Classify<Res, E>` lifted to a layer's wrapper error `W: LayerError<Inner = E>`.
///
/// Nest it once per layer: a breaker above a timeout classifies with
/// `Through<Through<C>>`. riprap's stack does this for you.
///
/// ```
/// use std::time::Duration;
/// use riprap::classify::{ByError, Class, Classify, Through};
/// use riprap::timeout::TimeoutError;
///
/// let classifier = Through(ByError);
/// let refused = TimeoutError::Inner(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
/// let slow = TimeoutError::<std::io::Error>::Elapsed(Duration::from_secs(1));
/// assert_eq!(classifier.classify(Err::<&(), _>(&refused)), Class::Permanent);
/// assert_eq!(classifier.classify(Err::<&(), _>(&slow)), Class::TimedOut);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Through<C>(pub C);

impl<C, Res, W> Classify<Res, W> for Through<C>
where
    W: LayerError,
    C: Classify<Res, W::Inner>,
{
    fn classify(&self, outcome: Result<&Res, &W>) -> Class {
        match outcome {
            Ok(res) => self.0.classify(Ok(res)),
            Err(w) => match w.layer_class() {
                Ok(inner) => self.0.classify(Err(inner)),
                Err(class) => class,
            },
        }
    }
}

impl<C> super::ClassifierExt for Through<C> {}
