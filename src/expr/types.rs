//! The static types of the expression language ([`ValueType`]) and the rules
//! that relate them: which types compare, how numeric types promote, which
//! types a CASE or COALESCE may mix.

use std::fmt;

use super::arrays::ArrayElement;
use crate::change::Value;

/// The type of a [`Value`], or of an expression's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    Bool,
    Int,
    Float,
    Numeric,
    Text,
    Date,
    Timestamp,
    TimestampTz,
    Json,
    /// An array whose elements compare by their text ([`ArrayElement`]);
    /// its values are [`Value::Text`], PostgreSQL's text of the array.
    Array(ArrayElement),
    /// The type of a bare `NULL`, which fits wherever any other type does.
    Null,
}

impl ValueType {
    pub fn of(value: &Value) -> ValueType {
        match value {
            Value::Null => ValueType::Null,
            Value::Bool(_) => ValueType::Bool,
            Value::Int(_) => ValueType::Int,
            Value::Float(_) => ValueType::Float,
            Value::Numeric(_) => ValueType::Numeric,
            Value::Text(_) => ValueType::Text,
            Value::Date(_) => ValueType::Date,
            Value::Timestamp(_) => ValueType::Timestamp,
            Value::TimestampTz(_) => ValueType::TimestampTz,
            Value::Json(_) => ValueType::Json,
        }
    }

    /// Whether arithmetic (and so `sum`/`avg`) applies: Int, Float, Numeric.
    pub fn is_numeric(self) -> bool {
        matches!(self, ValueType::Int | ValueType::Float | ValueType::Numeric)
    }

    /// Whether this is Date, Timestamp or TimestampTz.
    pub fn is_temporal(self) -> bool {
        matches!(
            self,
            ValueType::Date | ValueType::Timestamp | ValueType::TimestampTz
        )
    }

    /// Whether values of this type have an order, so `min`/`max`/ORDER BY apply.
    pub fn is_orderable(self) -> bool {
        !matches!(self, ValueType::Json | ValueType::Array(_))
    }

    /// Whether values of this type are [`Value::Text`]: text, and arrays.
    pub fn is_textual(self) -> bool {
        matches!(self, ValueType::Text | ValueType::Array(_))
    }

    pub fn name(self) -> &'static str {
        match self {
            ValueType::Bool => "bool",
            ValueType::Int => "int",
            ValueType::Float => "float",
            ValueType::Numeric => "numeric",
            ValueType::Text => "text",
            ValueType::Date => "date",
            ValueType::Timestamp => "timestamp",
            ValueType::TimestampTz => "timestamptz",
            ValueType::Json => "json",
            ValueType::Array(element) => element.name(),
            ValueType::Null => "null",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `=`, `<` and friends accept this pair. Text compares with the
/// temporal types because view authors write `created_at >= '2024-01-01'`.
pub(crate) fn comparable(left: ValueType, right: ValueType) -> bool {
    use ValueType as T;
    match (left, right) {
        (T::Null, _) | (_, T::Null) => true,
        (T::Json, _) | (_, T::Json) => false,
        (l, r) if l.is_numeric() && r.is_numeric() => true,
        (l, r) if l.is_temporal() && (r.is_temporal() || r == T::Text) => true,
        (T::Text, r) if r.is_temporal() => true,
        // Text meeting a boolean is read as one (`flag = 'yes'`), as
        // PostgreSQL reads a literal.
        (T::Bool, T::Text) | (T::Text, T::Bool) => true,
        // An array meets text where the text is a literal of it ('{a,b}').
        (T::Array(_), T::Text) | (T::Text, T::Array(_)) => true,
        (l, r) => l == r,
    }
}

/// The numeric type of an arithmetic result: Float if either side is Float,
/// else Numeric if either side is Numeric, else Int.
pub(crate) fn promote_numeric(left: ValueType, right: ValueType) -> ValueType {
    if left == ValueType::Float || right == ValueType::Float {
        ValueType::Float
    } else if left == ValueType::Numeric || right == ValueType::Numeric {
        ValueType::Numeric
    } else {
        ValueType::Int
    }
}

/// The one type that the branches of a CASE (or the arguments of COALESCE)
/// share, if any: NULL fits anything, numeric types promote.
pub(crate) fn common_type(left: ValueType, right: ValueType) -> Option<ValueType> {
    match (left, right) {
        (ValueType::Null, other) | (other, ValueType::Null) => Some(other),
        (l, r) if l == r => Some(l),
        (l, r) if l.is_numeric() && r.is_numeric() => Some(promote_numeric(l, r)),
        (array @ ValueType::Array(_), ValueType::Text)
        | (ValueType::Text, array @ ValueType::Array(_)) => Some(array),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_types_compare_with_each_other_but_not_with_text() {
        assert!(comparable(ValueType::Int, ValueType::Numeric));
        assert!(comparable(ValueType::Float, ValueType::Int));
        assert!(!comparable(ValueType::Text, ValueType::Int));
        assert!(!comparable(ValueType::Bool, ValueType::Int));
    }

    #[test]
    fn temporal_types_compare_with_each_other_and_with_text() {
        assert!(comparable(ValueType::Date, ValueType::TimestampTz));
        assert!(comparable(ValueType::Text, ValueType::Timestamp));
        assert!(comparable(ValueType::Date, ValueType::Text));
        assert!(!comparable(ValueType::Date, ValueType::Int));
    }

    #[test]
    fn json_compares_with_nothing_but_null() {
        assert!(!comparable(ValueType::Json, ValueType::Json));
        assert!(comparable(ValueType::Json, ValueType::Null));
        assert!(!ValueType::Json.is_orderable());
    }

    #[test]
    fn common_type_promotes_numbers_and_absorbs_null() {
        use ValueType as T;
        assert_eq!(common_type(T::Int, T::Numeric), Some(T::Numeric));
        assert_eq!(common_type(T::Numeric, T::Float), Some(T::Float));
        assert_eq!(common_type(T::Null, T::Text), Some(T::Text));
        assert_eq!(common_type(T::Text, T::Int), None);
    }

    #[test]
    fn type_of_a_value_follows_its_variant() {
        assert_eq!(
            ValueType::of(&Value::Numeric("1.5".into())),
            ValueType::Numeric
        );
        assert_eq!(ValueType::of(&Value::Null), ValueType::Null);
        assert!(ValueType::Numeric.is_numeric());
        assert!(!ValueType::Text.is_numeric());
    }
}
