//! Values across the wire: [`Val`] as a PostgreSQL parameter (serialised by the type the server
//! inferred for the placeholder) and a column as a [`Val`] (so `Row::val` yields what SQLite
//! yields: integers for `BIGINT`/`INTEGER`/`SMALLINT`/`BOOLEAN` and integral `NUMERIC` such as
//! `sum(bigint)`, reals for floats and fractional `NUMERIC`, text, blobs for `BYTEA`), and the
//! `?N` → `$N` placeholder rewrite.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::kernel::store::Val;

type BoxErr = Box<dyn StdError + Sync + Send>;

/// `?N` placeholders as PostgreSQL's `$N`. Text inside single-quoted literals, double-quoted
/// identifiers and `--` comments is left alone.
pub(crate) fn rewrite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '?' if chars.peek().is_some_and(|d| d.is_ascii_digit()) => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

/// The parameter type to declare for a value when the server cannot infer one (`?1 IS NULL`).
pub(crate) fn declared_type(v: &Val<'_>) -> Type {
    match v {
        Val::Int(_) => Type::INT8,
        Val::Real(_) => Type::FLOAT8,
        Val::Blob(_) => Type::BYTEA,
        Val::Null | Val::Text(_) => Type::TEXT,
    }
}

fn texty(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON
    )
}

fn mismatch(what: &str, ty: &Type) -> BoxErr {
    format!("cannot bind {what} as a PostgreSQL {ty} parameter").into()
}

fn int_to(n: i64, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxErr> {
    match *ty {
        Type::INT8 => n.to_sql(ty, out),
        Type::INT4 => i32::try_from(n)
            .map_err(|_| format!("{n} does not fit a PostgreSQL integer parameter"))?
            .to_sql(ty, out),
        Type::INT2 => i16::try_from(n)
            .map_err(|_| format!("{n} does not fit a PostgreSQL smallint parameter"))?
            .to_sql(ty, out),
        Type::FLOAT8 => (n as f64).to_sql(ty, out),
        Type::FLOAT4 => (n as f32).to_sql(ty, out),
        Type::BOOL => (n != 0).to_sql(ty, out),
        Type::OID => u32::try_from(n)
            .map_err(|_| format!("{n} is not an oid"))?
            .to_sql(ty, out),
        Type::NUMERIC => {
            numeric_from_i64(n, out);
            Ok(IsNull::No)
        }
        ref t if texty(t) => {
            out.put_slice(n.to_string().as_bytes());
            Ok(IsNull::No)
        }
        ref t => Err(mismatch("an integer", t)),
    }
}

impl ToSql for Val<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxErr> {
        match *self {
            Val::Null => Ok(IsNull::Yes),
            Val::Int(n) => int_to(n, ty, out),
            Val::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (f as f32).to_sql(ty, out),
                Type::INT8 | Type::INT4 | Type::INT2 | Type::NUMERIC if f.fract() == 0.0 => {
                    int_to(f as i64, ty, out)
                }
                ref t if texty(t) => {
                    out.put_slice(format!("{f:?}").as_bytes());
                    Ok(IsNull::No)
                }
                ref t => Err(mismatch("a real", t)),
            },
            Val::Text(s) => match *ty {
                Type::INT8 | Type::INT4 | Type::INT2 | Type::BOOL | Type::OID => {
                    let n: i64 = s
                        .trim()
                        .parse()
                        .map_err(|_| format!("{s:?} is not an integer ({ty} parameter)"))?;
                    int_to(n, ty, out)
                }
                Type::FLOAT8 | Type::FLOAT4 => {
                    let f: f64 = s
                        .trim()
                        .parse()
                        .map_err(|_| format!("{s:?} is not a number ({ty} parameter)"))?;
                    Val::Real(f).to_sql(ty, out)
                }
                Type::JSONB => {
                    out.put_u8(1);
                    out.put_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                Type::BYTEA => {
                    out.put_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                ref t if texty(t) => {
                    out.put_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                ref t => Err(mismatch("text", t)),
            },
            Val::Blob(b) => match *ty {
                Type::BYTEA => {
                    out.put_slice(b);
                    Ok(IsNull::No)
                }
                ref t if texty(t) && std::str::from_utf8(b).is_ok() => {
                    out.put_slice(b);
                    Ok(IsNull::No)
                }
                ref t => Err(mismatch("a blob", t)),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A column read as a [`Val`]; accepts every type (unknown ones read as text, else a blob).
pub(crate) struct PgVal<'a>(pub Val<'a>);

impl<'a> FromSql<'a> for PgVal<'a> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxErr> {
        let v = match *ty {
            Type::INT8 => Val::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Val::Int(i32::from_sql(ty, raw)? as i64),
            Type::INT2 => Val::Int(i16::from_sql(ty, raw)? as i64),
            Type::OID => Val::Int(u32::from_sql(ty, raw)? as i64),
            Type::BOOL => Val::Int(bool::from_sql(ty, raw)? as i64),
            Type::FLOAT8 => Val::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Val::Real(f32::from_sql(ty, raw)? as f64),
            Type::NUMERIC => numeric_val(raw)?,
            Type::BYTEA => Val::Blob(raw),
            Type::JSONB => Val::Text(std::str::from_utf8(raw.get(1..).unwrap_or_default())?),
            _ => match std::str::from_utf8(raw) {
                Ok(s) => Val::Text(s),
                Err(_) => Val::Blob(raw),
            },
        };
        Ok(PgVal(v))
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxErr> {
        Ok(PgVal(Val::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A binary `NUMERIC` as SQLite would hold it: an integer when integral and in range, else a
/// real. Layout: ndigits, weight, sign, dscale (i16/u16 each), then base-10000 digits.
fn numeric_val(raw: &[u8]) -> Result<Val<'static>, BoxErr> {
    let word = |i: usize| -> Result<i16, BoxErr> {
        raw.get(i..i + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated numeric".into())
    };
    let (ndigits, weight, sign) = (word(0)? as usize, word(2)? as i32, word(4)? as u16);
    if sign == 0xC000 {
        return Ok(Val::Real(f64::NAN));
    }
    let mut int: i128 = 0;
    let mut real = 0f64;
    let mut integral = true;
    for k in 0..ndigits {
        let d = word(8 + 2 * k)? as i128;
        let pow = weight - k as i32;
        real += d as f64 * 10000f64.powi(pow);
        if pow >= 0 {
            int = int.saturating_add(d.saturating_mul(10000i128.saturating_pow(pow as u32)));
        } else if d != 0 {
            integral = false;
        }
    }
    let neg = sign == 0x4000;
    if integral && let Ok(n) = i64::try_from(if neg { -int } else { int }) {
        return Ok(Val::Int(n));
    }
    Ok(Val::Real(if neg { -real } else { real }))
}

/// Write `n` as a binary `NUMERIC` (scale 0).
fn numeric_from_i64(n: i64, out: &mut BytesMut) {
    let mut digits = Vec::new();
    let mut m = n.unsigned_abs();
    while m > 0 {
        digits.push((m % 10000) as i16);
        m /= 10000;
    }
    digits.reverse();
    let weight = digits.len().saturating_sub(1) as i16;
    out.put_i16(digits.len() as i16);
    out.put_i16(weight);
    out.put_u16(if n < 0 { 0x4000 } else { 0 });
    out.put_i16(0);
    for d in digits {
        out.put_i16(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_literals_only() {
        assert_eq!(
            rewrite_placeholders("SELECT a FROM t WHERE x=?1 AND y IN (?2, ?10)"),
            "SELECT a FROM t WHERE x=$1 AND y IN ($2, $10)"
        );
        assert_eq!(
            rewrite_placeholders("SELECT '?1', \"?2\", ?3 -- ?4\n, ?5"),
            "SELECT '?1', \"?2\", $3 -- ?4\n, $5"
        );
        assert_eq!(
            rewrite_placeholders("SELECT 'it''s ?1', ?2"),
            "SELECT 'it''s ?1', $2"
        );
        // A bare `?` (not the kernel's dialect) is left for the server to reject.
        assert_eq!(rewrite_placeholders("x = ?"), "x = ?");
    }

    fn bind(v: Val<'_>, ty: &Type) -> Result<Option<Vec<u8>>, BoxErr> {
        let mut out = BytesMut::new();
        Ok(match v.to_sql(ty, &mut out)? {
            IsNull::Yes => None,
            IsNull::No => Some(out.to_vec()),
        })
    }

    fn read(ty: &Type, raw: &[u8]) -> Val<'static> {
        let v = PgVal::from_sql(ty, raw).unwrap().0;
        match v {
            Val::Text(s) => Val::Text(Box::leak(s.to_string().into_boxed_str())),
            Val::Blob(b) => Val::Blob(Box::leak(b.to_vec().into_boxed_slice())),
            Val::Int(n) => Val::Int(n),
            Val::Real(f) => Val::Real(f),
            Val::Null => Val::Null,
        }
    }

    #[test]
    fn values_bind_by_the_inferred_type_and_read_back_as_on_sqlite() {
        for (v, ty) in [
            (Val::Int(7), Type::INT8),
            (Val::Int(-3), Type::INT4),
            (Val::Int(12), Type::INT2),
            (Val::Int(1), Type::BOOL),
            (Val::Real(2.5), Type::FLOAT8),
            (Val::Text("héllo"), Type::TEXT),
            (Val::Blob(b"\x00\xff"), Type::BYTEA),
            (Val::Int(-123_456_789_012), Type::NUMERIC),
            (Val::Int(0), Type::NUMERIC),
        ] {
            let raw = bind(v, &ty).unwrap().unwrap();
            assert_eq!(read(&ty, &raw), v, "{v:?} as {ty}");
        }
        // Text where the server wants a number (SQLite's affinity would convert it).
        assert_eq!(
            read(
                &Type::INT8,
                &bind(Val::Text("42"), &Type::INT8).unwrap().unwrap()
            ),
            Val::Int(42)
        );
        // A number where the server wants text binds as its decimal text.
        assert_eq!(bind(Val::Int(42), &Type::TEXT).unwrap().unwrap(), b"42");
        assert_eq!(bind(Val::Null, &Type::INT8).unwrap(), None);
        assert!(
            bind(Val::Int(1 << 40), &Type::INT4).is_err(),
            "out of range is an error"
        );
        assert!(bind(Val::Text("x"), &Type::INT8).is_err());
        assert!(bind(Val::Blob(b"\xff"), &Type::TEXT).is_err());
    }

    #[test]
    fn numeric_reads_integral_as_int_and_fractions_as_real() {
        // 12345.5 = digits [1, 2345, 5000], weight 1, dscale 1.
        let mut raw = BytesMut::new();
        for w in [3i16, 1, 0, 1, 1, 2345, 5000] {
            raw.put_i16(w);
        }
        assert_eq!(read(&Type::NUMERIC, &raw), Val::Real(12345.5));
        // 20000 = digits [2], weight 1 (trailing zero groups omitted).
        let mut raw = BytesMut::new();
        for w in [1i16, 1, 0, 0, 2] {
            raw.put_i16(w);
        }
        assert_eq!(read(&Type::NUMERIC, &raw), Val::Int(20000));
        assert_eq!(PgVal::from_sql_null(&Type::NUMERIC).unwrap().0, Val::Null);
    }
}
