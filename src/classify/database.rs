//! Verdicts for database errors.
//!
//! Databases report failures with SQLSTATE codes (ISO SQL, extended by PostgreSQL and others):
//! five characters whose first two name a class. [`sqlstate`] maps a code to a [`Class`]
//! without any client library, so it serves every driver that exposes the code (sqlx's
//! `DatabaseError::code()`, tokio-postgres' `SqlState::code()`, JDBC-style wrappers).
//!
//! The split follows one question: could the same statement succeed if sent again?
//!
//! | SQLSTATE | meaning | class |
//! |---|---|---|
//! | `40001`, `40P01` | serialization failure, deadlock | transient: the transaction lost a race |
//! | `08xxx` | connection exception | transient |
//! | `53300` | too many connections | throttled |
//! | `53xxx`, `57xxx`, `58xxx` | out of resources, shutdown or cancel, system I/O | transient |
//! | `55P03`, `55006` | lock not available, object in use | transient |
//! | `23xxx` | constraint violation | permanent |
//! | `42xxx` | syntax error or access rule violation | permanent |
//! | `22xxx`, `28xxx`, `0Axxx`, … | bad data, bad credentials, unsupported feature | permanent |
//! | `02000` | no data | permanent (a "not found" a cache may remember) |
//! | `00000`, `01xxx` | success, warning | success |
//!
//! With the `rusqlite` feature, `rusqlite::Error` implements
//! [`Classified`](super::Classified): busy, locked and I/O failures are transient; constraint
//! violations, SQL errors and "no rows" are permanent.
//!
//! With the `sqlx` feature, `sqlx::Error` implements [`Classified`](super::Classified), and
//! with the `tokio-postgres` feature, `tokio_postgres::Error` and its `DbError` do: a server's
//! refusal by its SQLSTATE through [`sqlstate`], I/O failures and closed connections
//! transient, sqlx's pool timeout throttled, and the program's own mistakes (no rows, a
//! missing column, a value that does not convert, bad configuration) permanent. Each impl's
//! documentation has its full table.

use super::Class;

/// The verdict on a SQLSTATE code, such as `"40001"` or `"23505"`.
///
/// Letters may be in either case. A code that is not five ASCII letters or digits, or whose
/// class is not listed in the [module docs](self), is transient: a failure nobody recognises
/// is more often a passing fault than a bad statement, and retries stay bounded by attempts
/// and budget.
///
/// ```
/// use riprap::classify::{database::sqlstate, Class};
///
/// assert_eq!(sqlstate("40001"), Class::Transient); // serialization failure: run it again
/// assert_eq!(sqlstate("40P01"), Class::Transient); // deadlock victim
/// assert_eq!(sqlstate("08006"), Class::Transient); // connection failure
/// assert_eq!(sqlstate("23505"), Class::Permanent); // unique violation: never
/// assert_eq!(sqlstate("42601"), Class::Permanent); // syntax error
/// ```
pub fn sqlstate(code: &str) -> Class {
    let bytes = code.as_bytes();
    if bytes.len() != 5 || !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return Class::Transient;
    }
    let mut upper = [0u8; 5];
    for (dst, src) in upper.iter_mut().zip(bytes) {
        *dst = src.to_ascii_uppercase();
    }
    let (class, sub) = upper.split_at(2);
    match (class, sub) {
        (b"00", _) | (b"01", _) => Class::Success,
        (b"40", b"002") => Class::Permanent, // integrity violation found at commit
        (b"40", _) => Class::Transient,      // 40001 serialization, 40P01 deadlock, 40003 unknown
        (b"08", _) => Class::Transient,
        (b"53", b"300") => Class::Throttled { retry_after: None },
        (b"53", _) | (b"57", _) | (b"58", _) => Class::Transient,
        (b"55", b"P03") | (b"55", b"006") => Class::Transient,
        (b"25", b"P03") => Class::Transient, // idle-in-transaction timeout: a fresh session works
        (b"XX", b"000") => Class::Transient,
        (b"XX", _) => Class::Permanent, // data corrupted, index corrupted
        (b"02", _)
        | (b"0A", _)
        | (b"0B", _)
        | (b"0F", _)
        | (b"0L", _)
        | (b"0P", _)
        | (b"20", _)
        | (b"21", _)
        | (b"22", _)
        | (b"23", _)
        | (b"24", _)
        | (b"25", _)
        | (b"26", _)
        | (b"27", _)
        | (b"28", _)
        | (b"2B", _)
        | (b"2D", _)
        | (b"2F", _)
        | (b"34", _)
        | (b"38", _)
        | (b"39", _)
        | (b"3B", _)
        | (b"3D", _)
        | (b"3F", _)
        | (b"42", _)
        | (b"44", _)
        | (b"55", _)
        | (b"F0", _)
        | (b"HV", _)
        | (b"P0", _) => Class::Permanent,
        _ => Class::Transient,
    }
}

/// Busy, locked, I/O and interrupted are transient; constraint violations, SQL errors
/// (`SQLITE_ERROR`: syntax, no such table), "no rows" and type or API misuse are permanent.
///
/// ```
/// use riprap::classify::{Class, Classified};
///
/// assert_eq!(rusqlite::Error::QueryReturnedNoRows.class(), Class::Permanent);
/// let busy = rusqlite::Error::SqliteFailure(
///     rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
///     None,
/// );
/// assert_eq!(busy.class(), Class::Transient);
/// ```
#[cfg(feature = "rusqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "rusqlite")))]
impl super::Classified for rusqlite::Error {
    fn class(&self) -> Class {
        use rusqlite::ErrorCode::*;
        match self.sqlite_error_code() {
            Some(
                DatabaseBusy
                | DatabaseLocked
                | SystemIoFailure
                | OperationInterrupted
                | OperationAborted
                | CannotOpen
                | FileLockingProtocolFailed
                | SchemaChanged
                | OutOfMemory
                | DiskFull
                | InternalMalfunction,
            ) => Class::Transient,
            Some(_) => Class::Permanent,
            // Everything else rusqlite reports is a mismatch between the program and the
            // schema (wrong column, bad conversion, no rows): the same call fails again.
            None => Class::Permanent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "rusqlite")]
    use crate::classify::Classified;

    #[test]
    fn sqlstate_table() {
        let cases = [
            ("00000", Class::Success),
            ("01000", Class::Success),
            ("02000", Class::Permanent),
            ("40001", Class::Transient),
            ("40p01", Class::Transient),
            ("40002", Class::Permanent),
            ("08001", Class::Transient),
            ("08P01", Class::Transient),
            ("53300", Class::Throttled { retry_after: None }),
            ("53100", Class::Transient),
            ("57P01", Class::Transient),
            ("57014", Class::Transient),
            ("58030", Class::Transient),
            ("55P03", Class::Transient),
            ("55000", Class::Permanent),
            ("23505", Class::Permanent),
            ("23503", Class::Permanent),
            ("42601", Class::Permanent),
            ("42P01", Class::Permanent),
            ("22012", Class::Permanent),
            ("28P01", Class::Permanent),
            ("XX000", Class::Transient),
            ("XX001", Class::Permanent),
            ("ZZ999", Class::Transient),
            ("", Class::Transient),
            ("4000", Class::Transient),
            ("400011", Class::Transient),
            ("40-01", Class::Transient),
            ("4000é", Class::Transient),
        ];
        for (code, class) in cases {
            assert_eq!(sqlstate(code), class, "{code:?}");
        }
    }

    #[cfg(feature = "rusqlite")]
    #[test]
    fn rusqlite_errors() {
        use rusqlite::ffi;
        let failure = |code| rusqlite::Error::SqliteFailure(ffi::Error::new(code), None);
        assert_eq!(failure(ffi::SQLITE_BUSY).class(), Class::Transient);
        assert_eq!(failure(ffi::SQLITE_LOCKED).class(), Class::Transient);
        assert_eq!(failure(ffi::SQLITE_IOERR).class(), Class::Transient);
        assert_eq!(failure(ffi::SQLITE_CONSTRAINT).class(), Class::Permanent);
        assert_eq!(failure(ffi::SQLITE_ERROR).class(), Class::Permanent);
        assert_eq!(
            rusqlite::Error::QueryReturnedNoRows.class(),
            Class::Permanent
        );
        assert_eq!(
            rusqlite::Error::InvalidColumnIndex(3).class(),
            Class::Permanent
        );

        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let syntax = conn.execute("SELEKT 1", []).unwrap_err();
        assert_eq!(syntax.class(), Class::Permanent);
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)", [])
            .unwrap();
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let dup = conn.execute("INSERT INTO t VALUES (1)", []).unwrap_err();
        assert_eq!(dup.class(), Class::Permanent);

        // Inside a boxed error, as tower stacks carry it, the verdict is the same.
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(failure(ffi::SQLITE_BUSY));
        assert_eq!(boxed.class(), Class::Transient);
    }
}
