//! PostgreSQL client errors in riprap's vocabulary (features `sqlx` and `tokio-postgres`).
//!
//! Both clients report a server's refusal with its SQLSTATE code, and both are classified by
//! the one table in [`sqlstate`]; what remains is each client's own failures (I/O, pool,
//! decoding), sorted here by the same question: could the same call succeed if sent again?

#[cfg(feature = "tokio-postgres")]
use std::error::Error as _;

use super::chain::classify_chain;
use super::database::sqlstate;
use super::{Class, Classified};

/// By SQLSTATE for errors the server returned; by kind for I/O; throttled for a pool that had
/// no connection to give before its acquire timeout; permanent for the program's own mistakes
/// (no rows, a missing column, a value that does not decode, bad configuration).
///
/// | error | class |
/// |---|---|
/// | `Database` | by its SQLSTATE ([`sqlstate`]): `40001`, `40P01`, `57P01`, `08xxx` transient, `53300` throttled, `23xxx`, `22xxx`, `42xxx` permanent |
/// | `Io` | by [`std::io::ErrorKind`], as for [`std::io::Error`]: every network failure is transient |
/// | `PoolTimedOut` | throttled |
/// | `Protocol`, `WorkerCrashed`, `BeginFailed` | transient: the connection is out of step, a new one starts clean |
/// | `Tls` | by the I/O error inside it, else permanent (a certificate does not fix itself) |
/// | `RowNotFound`, `ColumnNotFound`, `ColumnDecode`, `Decode`, `Encode`, `Configuration`, `PoolClosed`, … | permanent |
/// | anything newer | transient |
///
/// A pool that cannot reach the server at all keeps trying until its acquire timeout and then
/// reports `PoolTimedOut`, so a database that is down reads as throttled through a pool and as
/// a refused connection (transient) through `PgConnection::connect`.
///
/// ```
/// use riprap::classify::{Class, Classified};
///
/// assert_eq!(sqlx::Error::PoolTimedOut.class(), Class::Throttled { retry_after: None });
/// assert_eq!(sqlx::Error::RowNotFound.class(), Class::Permanent);
/// let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
/// assert_eq!(sqlx::Error::Io(reset).class(), Class::Transient);
/// ```
#[cfg(feature = "sqlx")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx")))]
impl Classified for sqlx::Error {
    fn class(&self) -> Class {
        use sqlx::Error::*;
        match self {
            Database(db) => sqlx_database_class(&**db),
            Io(e) => e.class(),
            PoolTimedOut => Class::Throttled { retry_after: None },
            Protocol(_) | WorkerCrashed | BeginFailed => Class::Transient,
            Tls(e) => classify_chain(&**e).unwrap_or(Class::Permanent),
            AnyDriverError(e) => classify_chain(&**e).unwrap_or(Class::Transient),
            Configuration(_)
            | InvalidArgument(_)
            | RowNotFound
            | TypeNotFound { .. }
            | ColumnIndexOutOfBounds { .. }
            | ColumnNotFound(_)
            | ColumnDecode { .. }
            | Encode(_)
            | Decode(_)
            | PoolClosed
            | InvalidSavePointStatement => Class::Permanent,
            // `Migrate` (with sqlx's `migrate` feature) and variants added later: a failure
            // nobody recognises is transient, as everywhere in riprap.
            _ => Class::Transient,
        }
    }
}

/// Constraint violations by sqlx's own kind first, which every driver reports, then the
/// SQLSTATE code.
#[cfg(feature = "sqlx")]
fn sqlx_database_class(db: &dyn sqlx::error::DatabaseError) -> Class {
    if db.is_unique_violation() || db.is_foreign_key_violation() || db.is_check_violation() {
        return Class::Permanent;
    }
    match db.code() {
        Some(code) => sqlstate(&code),
        None => Class::Transient,
    }
}

/// By SQLSTATE for errors the server returned; transient for a closed connection and for I/O
/// failures (by kind, as for [`std::io::Error`]); permanent for the program's own mistakes
/// (wrong parameter count, a column that is not there, a value that does not convert,
/// configuration, authentication).
///
/// | error | class |
/// |---|---|
/// | from the server ([`as_db_error`](tokio_postgres::Error::as_db_error)) | by its SQLSTATE ([`sqlstate`]) |
/// | [`is_closed`](tokio_postgres::Error::is_closed) | transient |
/// | communicating or connecting (an I/O error inside) | by [`std::io::ErrorKind`]: every network failure is transient |
/// | "unexpected message from server", "timeout waiting for server" | transient |
/// | anything else | permanent |
///
/// tokio-postgres keeps its error kind private, so the last two rows are told apart by their
/// message; should it ever change, those errors fall on the permanent side, which never
/// retries.
///
/// ```
/// use riprap::classify::{Class, Classified};
/// use tokio_postgres::error::SqlState;
///
/// // The server's refusals carry a SQLSTATE, classified by the shared table.
/// assert_eq!(SqlState::T_R_SERIALIZATION_FAILURE.code(), "40001");
/// assert_eq!(riprap::classify::database::sqlstate(SqlState::UNIQUE_VIOLATION.code()), Class::Permanent);
///
/// // A string that is not a connection URL is the program's mistake.
/// let bad = "postgres://[::1".parse::<tokio_postgres::Config>().unwrap_err();
/// assert_eq!(bad.class(), Class::Permanent);
/// ```
#[cfg(feature = "tokio-postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-postgres")))]
impl Classified for tokio_postgres::Error {
    fn class(&self) -> Class {
        if let Some(db) = self.as_db_error() {
            return db.class();
        }
        if self.is_closed() {
            return Class::Transient;
        }
        if let Some(source) = self.source() {
            // I/O while communicating, connecting, encoding or parsing; a TLS failure that
            // wraps one. Any other cause is a value, a setting or a credential of the caller's.
            return classify_chain(source).unwrap_or(Class::Permanent);
        }
        if displays_as(self, "unexpected message from server")
            || displays_as(self, "timeout waiting for server")
        {
            Class::Transient
        } else {
            Class::Permanent
        }
    }
}

/// By its SQLSTATE ([`sqlstate`]).
///
/// ```
/// use riprap::classify::{Class, Classified};
///
/// # fn check(e: &tokio_postgres::error::DbError) {
/// // A `DbError` from `tokio_postgres::Error::as_db_error`.
/// let verdict: Class = e.class();
/// # }
/// ```
#[cfg(feature = "tokio-postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-postgres")))]
impl Classified for tokio_postgres::error::DbError {
    fn class(&self) -> Class {
        sqlstate(self.code().code())
    }
}

/// Whether `value` displays exactly as `text`, compared piece by piece as it is written, so
/// nothing is allocated.
#[cfg(feature = "tokio-postgres")]
fn displays_as(value: &dyn std::fmt::Display, text: &str) -> bool {
    use std::fmt::{self, Write};

    struct Expect<'a>(&'a str);
    impl Write for Expect<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            match self.0.strip_prefix(s) {
                Some(rest) => {
                    self.0 = rest;
                    Ok(())
                }
                None => Err(fmt::Error),
            }
        }
    }
    let mut expect = Expect(text);
    write!(expect, "{value}").is_ok() && expect.0.is_empty()
}

/// The verdict on a PostgreSQL client error met while walking a boxed error's source chain.
pub(crate) fn known_class(err: &(dyn std::error::Error + 'static)) -> Option<Class> {
    #[cfg(feature = "sqlx")]
    if let Some(e) = err.downcast_ref::<sqlx::Error>() {
        return Some(e.class());
    }
    #[cfg(feature = "tokio-postgres")]
    if let Some(e) = err.downcast_ref::<tokio_postgres::Error>() {
        return Some(e.class());
    }
    #[cfg(feature = "tokio-postgres")]
    if let Some(e) = err.downcast_ref::<tokio_postgres::error::DbError>() {
        return Some(e.class());
    }
    None
}

#[cfg(all(test, feature = "tokio-postgres"))]
mod tests {
    use std::fmt;

    use super::displays_as;

    /// Written in two pieces, as a `Display` impl with a `write!` of several parts is.
    struct Pieces;
    impl fmt::Display for Pieces {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("unexpected message")?;
            f.write_str(" from server")
        }
    }

    #[test]
    fn displays_as_compares_whole_messages() {
        assert!(displays_as(&Pieces, "unexpected message from server"));
        assert!(!displays_as(
            &"unexpected message",
            "unexpected message from server"
        ));
        assert!(!displays_as(
            &"unexpected message from server!",
            "unexpected message from server"
        ));
        assert!(displays_as(&"", ""));
    }
}
