//! The expression tree: what parsing produces from sqlparser's AST, and what
//! type checking and evaluation walk. It holds only the supported subset, so
//! every later stage can match exhaustively.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::change::Value;

use super::ColumnPath;
use super::arrays::{ArrayElement, SetOp};
use super::cast::{CastTarget, IntWidth};
use super::date_parts::{DateField, TruncUnit};
use super::enum_order::EnumOrder;
use super::functions::Function;
use super::json_ops::JsonOp;
use super::temporal::TemporalKind;
use super::time_zone::TimeZone;

/// One node of a parsed expression; its `Display` (in `render`) writes it
/// back as SQL for error messages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Column(ColumnPath),
    Literal(Value),
    /// An array literal of a known element type: `'{1,2}'::int[]`,
    /// `ARRAY['a', 'b']`. Its value is its text, as a row holds an array.
    ArrayLiteral {
        text: String,
        element: ArrayElement,
    },
    /// Unary `-` (negative) or `+`.
    Sign {
        negative: bool,
        operand: Box<Node>,
    },
    Arithmetic {
        op: ArithmeticOp,
        left: Box<Node>,
        right: Box<Node>,
    },
    Concat {
        left: Box<Node>,
        right: Box<Node>,
    },
    /// `operand -> key` (`as_text` false) or `operand ->> key`.
    JsonField {
        operand: Box<Node>,
        key: Box<Node>,
        as_text: bool,
    },
    /// `left #> right`, `left ? right`, `left @> right` and the other
    /// jsonb operators; a path or key list on the right is a text literal
    /// that reads as a text array.
    JsonOp {
        op: JsonOp,
        left: Box<Node>,
        right: Box<Node>,
    },
    Comparison {
        op: ComparisonOp,
        left: Box<Node>,
        right: Box<Node>,
    },
    /// `left op ANY (right)` (`all` false) or `left op ALL (right)`: `left`
    /// compared with each element of the array `right`.
    Quantified {
        op: ComparisonOp,
        all: bool,
        left: Box<Node>,
        right: Box<Node>,
    },
    /// `left && right` over arrays. (`@>` and `<@`, which jsonb has too,
    /// are [`Node::JsonOp`]s, read as arrays where their operands are.)
    ArraySet {
        op: SetOp,
        left: Box<Node>,
        right: Box<Node>,
    },
    Logical {
        op: LogicalOp,
        left: Box<Node>,
        right: Box<Node>,
    },
    Not(Box<Node>),
    IsNull {
        operand: Box<Node>,
        negated: bool,
    },
    /// `IS TRUE` (expected = true), `IS FALSE`, and their `IS NOT` forms.
    IsBool {
        operand: Box<Node>,
        expected: bool,
        negated: bool,
    },
    IsDistinct {
        left: Box<Node>,
        right: Box<Node>,
        negated: bool,
    },
    InList {
        operand: Box<Node>,
        list: Vec<Node>,
        negated: bool,
    },
    Between {
        operand: Box<Node>,
        low: Box<Node>,
        high: Box<Node>,
        negated: bool,
    },
    Like {
        operand: Box<Node>,
        pattern: Box<Node>,
        /// `None` after `ESCAPE ''`, which turns escaping off.
        escape: Option<char>,
        case_insensitive: bool,
        negated: bool,
    },
    Case {
        /// Present in the "simple" form `CASE x WHEN 1 THEN ...`.
        operand: Option<Box<Node>>,
        branches: Vec<CaseBranch>,
        otherwise: Option<Box<Node>>,
    },
    Cast {
        operand: Box<Node>,
        target: CastTarget,
    },
    Call {
        function: Function,
        args: Vec<Node>,
    },
    Extract {
        field: DateField,
        operand: Box<Node>,
        /// Written `date_part(…)`, which reads a date as a timestamp (so it
        /// has an hour, 0, and one past 294276 AD is out of range), where
        /// `extract` reads it as a date.
        date_part: bool,
    },
    DateTrunc {
        unit: TruncUnit,
        operand: Box<Node>,
        /// `date_trunc(unit, x, 'zone')` truncates in that zone, not the
        /// database's.
        zone: Option<Arc<TimeZone>>,
    },
    /// `x AT TIME ZONE 'zone'`: an instant's civil time there (a
    /// timestamp), or a civil time's instant there (a timestamptz).
    AtTimeZone {
        operand: Box<Node>,
        zone: Arc<TimeZone>,
    },
    /// Integer arithmetic over `smallint`s and `integer`s, which
    /// PostgreSQL computes in the operands' width and refuses past its
    /// range: never parsed, put in by the plan once the columns' types are
    /// known ([`super::common_type`]).
    IntRange {
        operand: Box<Node>,
        width: IntWidth,
    },
    /// An enum's value as its label's place in the enum's order, for a
    /// comparison for order: never parsed, put in by the plan once the
    /// columns' types are known ([`super::enum_order`]).
    EnumPlace {
        operand: Box<Node>,
        order: Arc<EnumOrder>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CaseBranch {
    pub when: Node,
    pub then: Node,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithmeticOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
}

impl ArithmeticOp {
    pub fn symbol(self) -> &'static str {
        match self {
            ArithmeticOp::Add => "+",
            ArithmeticOp::Subtract => "-",
            ArithmeticOp::Multiply => "*",
            ArithmeticOp::Divide => "/",
            ArithmeticOp::Modulo => "%",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ComparisonOp {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl ComparisonOp {
    /// Whether two values ordered `ordering` satisfy this comparison.
    pub fn holds(self, ordering: Ordering) -> bool {
        match self {
            ComparisonOp::Equal => ordering.is_eq(),
            ComparisonOp::NotEqual => ordering.is_ne(),
            ComparisonOp::Less => ordering.is_lt(),
            ComparisonOp::LessOrEqual => ordering.is_le(),
            ComparisonOp::Greater => ordering.is_gt(),
            ComparisonOp::GreaterOrEqual => ordering.is_ge(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogicalOp {
    And,
    Or,
}

impl Node {
    /// Whether a `timestamptz` is made here from something else: a cast to
    /// one, `date_trunc` in a zone, or `AT TIME ZONE` (of a timestamp).
    /// Compared with a date, a timestamp or text, it is read in the
    /// database's time zone, as a `timestamptz` column is.
    pub fn makes_timestamptz(&self) -> bool {
        let here = match self {
            Node::Cast { target, .. } => *target == CastTarget::Temporal(TemporalKind::TimestampTz),
            Node::DateTrunc { zone, .. } => zone.is_some(),
            Node::AtTimeZone { .. } => true,
            _ => false,
        };
        here || self.children().into_iter().any(Node::makes_timestamptz)
    }

    /// The operands of this node's `AND`s and `OR`s, through nested ones, in
    /// source order; a node that is neither is its own one operand.
    pub fn logical_operands(&self) -> Vec<&Node> {
        match self {
            Node::Logical { left, right, .. } => {
                let mut operands = left.logical_operands();
                operands.extend(right.logical_operands());
                operands
            }
            other => vec![other],
        }
    }

    /// The direct sub-expressions, in the order they appear in the source.
    pub fn children(&self) -> Vec<&Node> {
        match self {
            Node::Column(_) | Node::Literal(_) | Node::ArrayLiteral { .. } => Vec::new(),
            Node::Sign { operand, .. }
            | Node::Not(operand)
            | Node::IsNull { operand, .. }
            | Node::IsBool { operand, .. }
            | Node::Cast { operand, .. }
            | Node::Extract { operand, .. }
            | Node::DateTrunc { operand, .. }
            | Node::AtTimeZone { operand, .. }
            | Node::IntRange { operand, .. }
            | Node::EnumPlace { operand, .. } => vec![operand],
            Node::Arithmetic { left, right, .. }
            | Node::Concat { left, right }
            | Node::JsonField {
                operand: left,
                key: right,
                ..
            }
            | Node::JsonOp { left, right, .. }
            | Node::Comparison { left, right, .. }
            | Node::Quantified { left, right, .. }
            | Node::ArraySet { left, right, .. }
            | Node::Logical { left, right, .. }
            | Node::IsDistinct { left, right, .. } => vec![left, right],
            Node::Like {
                operand, pattern, ..
            } => vec![operand, pattern],
            Node::Between {
                operand, low, high, ..
            } => vec![operand, low, high],
            Node::InList { operand, list, .. } => std::iter::once(&**operand).chain(list).collect(),
            Node::Call { args, .. } => args.iter().collect(),
            Node::Case { .. } => self.case_children(),
        }
    }

    /// [`Node::children`], to rewrite them.
    pub fn children_mut(&mut self) -> Vec<&mut Node> {
        match self {
            Node::Column(_) | Node::Literal(_) | Node::ArrayLiteral { .. } => Vec::new(),
            Node::Sign { operand, .. }
            | Node::Not(operand)
            | Node::IsNull { operand, .. }
            | Node::IsBool { operand, .. }
            | Node::Cast { operand, .. }
            | Node::Extract { operand, .. }
            | Node::DateTrunc { operand, .. }
            | Node::AtTimeZone { operand, .. }
            | Node::IntRange { operand, .. }
            | Node::EnumPlace { operand, .. } => vec![operand],
            Node::Arithmetic { left, right, .. }
            | Node::Concat { left, right }
            | Node::JsonField {
                operand: left,
                key: right,
                ..
            }
            | Node::JsonOp { left, right, .. }
            | Node::Comparison { left, right, .. }
            | Node::Quantified { left, right, .. }
            | Node::ArraySet { left, right, .. }
            | Node::Logical { left, right, .. }
            | Node::IsDistinct { left, right, .. } => vec![left, right],
            Node::Like {
                operand, pattern, ..
            } => vec![operand, pattern],
            Node::Between {
                operand, low, high, ..
            } => vec![operand, low, high],
            Node::InList { operand, list, .. } => {
                std::iter::once(&mut **operand).chain(list).collect()
            }
            Node::Call { args, .. } => args.iter_mut().collect(),
            Node::Case {
                operand,
                branches,
                otherwise,
            } => operand
                .as_deref_mut()
                .into_iter()
                .chain(branches.iter_mut().flat_map(|b| [&mut b.when, &mut b.then]))
                .chain(otherwise.as_deref_mut())
                .collect(),
        }
    }

    fn case_children(&self) -> Vec<&Node> {
        let Node::Case {
            operand,
            branches,
            otherwise,
        } = self
        else {
            return Vec::new();
        };
        let branch_nodes = branches.iter().flat_map(|b| [&b.when, &b.then]);
        operand
            .as_deref()
            .into_iter()
            .chain(branch_nodes)
            .chain(otherwise.as_deref())
            .collect()
    }

    /// The columns whose value, of their own type, this node's value may
    /// be: a column as it stands, or through `coalesce`, `nullif` or a
    /// `CASE` result, which keep their argument's type in PostgreSQL (so a
    /// citext stays citext, and compares as one).
    pub fn value_columns(&self) -> Vec<&ColumnPath> {
        match self {
            Node::Column(path) => vec![path],
            Node::Call {
                function: Function::Coalesce | Function::Greatest | Function::Least,
                args,
            } => args.iter().flat_map(Node::value_columns).collect(),
            Node::Call {
                function: Function::Nullif,
                args,
            } => args.iter().take(1).flat_map(Node::value_columns).collect(),
            Node::Case { .. } => self
                .case_results()
                .into_iter()
                .flat_map(Node::value_columns)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The columns compared for order (`<`, `<=`, `>`, `>=`, `BETWEEN`) as
    /// they stand (or through what keeps their type, [`Node::value_columns`]),
    /// not through another function or a cast, deduplicated.
    pub fn ordered_columns(&self) -> Vec<ColumnPath> {
        self.operand_columns(Node::ordered_operands)
    }

    /// The columns compared with another value as they stand (or through
    /// what keeps their type), not through another function or a cast, for
    /// equality or order (`=`, `<>`, `<`, `IN`,
    /// `BETWEEN`, `LIKE`, `IS DISTINCT FROM`, a `CASE` operand),
    /// deduplicated.
    pub fn compared_columns(&self) -> Vec<ColumnPath> {
        self.operand_columns(Node::compared_operands)
    }

    /// The columns whose values the `operands` of a node of this tree may
    /// be ([`Node::value_columns`]), deduplicated.
    fn operand_columns(&self, operands: fn(&Node) -> Vec<&Node>) -> Vec<ColumnPath> {
        let mut found = Vec::new();
        self.collect_operand_columns(operands, &mut found);
        found
    }

    fn collect_operand_columns(
        &self,
        operands: fn(&Node) -> Vec<&Node>,
        found: &mut Vec<ColumnPath>,
    ) {
        for path in operands(self).into_iter().flat_map(Node::value_columns) {
            if !found.contains(path) {
                found.push(path.clone());
            }
        }
        for child in self.children() {
            child.collect_operand_columns(operands, found);
        }
    }

    /// The columns compared for order where an enum's could not be
    /// compared by its labels' places ([`super::enum_order`]): in
    /// `greatest`, `least`, and `op ANY (array)`.
    pub fn unplaced_ordered_columns(&self) -> Vec<ColumnPath> {
        self.operand_columns(Node::unplaced_ordered_operands)
    }

    /// Each comparison for order of the tree where an enum compares by its
    /// labels' places (`<`, `<=`, `>`, `>=`, `BETWEEN`): per operand, the
    /// columns whose value it may be ([`Node::value_columns`]) and whether
    /// it is a literal.
    pub fn placed_orderings(&self) -> Vec<Vec<(Vec<ColumnPath>, bool)>> {
        let mut found = Vec::new();
        self.collect_placed_orderings(&mut found);
        found
    }

    fn collect_placed_orderings(&self, found: &mut Vec<Vec<(Vec<ColumnPath>, bool)>>) {
        let operands = self.placed_ordered_operands();
        if !operands.is_empty() {
            found.push(
                operands
                    .into_iter()
                    .map(|operand| {
                        let columns = operand.value_columns().into_iter().cloned().collect();
                        (columns, matches!(operand, Node::Literal(_)))
                    })
                    .collect(),
            );
        }
        for child in self.children() {
            child.collect_placed_orderings(found);
        }
    }

    /// The operands this node compares for order.
    fn ordered_operands(&self) -> Vec<&Node> {
        let mut operands = self.placed_ordered_operands();
        operands.extend(self.unplaced_ordered_operands());
        operands
    }

    /// The operands of a comparison for order that compares enums by their
    /// labels' places.
    fn placed_ordered_operands(&self) -> Vec<&Node> {
        match self {
            Node::Comparison { op, left, right }
                if !matches!(op, ComparisonOp::Equal | ComparisonOp::NotEqual) =>
            {
                vec![left, right]
            }
            Node::Between {
                operand, low, high, ..
            } => vec![operand, low, high],
            _ => Vec::new(),
        }
    }

    /// The operands compared for order otherwise.
    fn unplaced_ordered_operands(&self) -> Vec<&Node> {
        match self {
            // The array's elements are of a type that sorts as its text.
            Node::Quantified { op, left, .. }
                if !matches!(op, ComparisonOp::Equal | ComparisonOp::NotEqual) =>
            {
                vec![left]
            }
            Node::Call {
                function: Function::Greatest | Function::Least,
                args,
            } => args.iter().collect(),
            _ => Vec::new(),
        }
    }

    /// The operands whose values this node's value may be, which take one
    /// type (`coalesce`, `nullif`, a `CASE`'s results): a text among them
    /// is read as the others' type.
    fn value_operands(&self) -> Vec<&Node> {
        match self {
            Node::Call {
                function: Function::Coalesce | Function::Nullif,
                args,
            } => args.iter().collect(),
            Node::Case { .. } => self.case_results(),
            _ => Vec::new(),
        }
    }

    /// A `CASE`'s results: each branch's `THEN` and the `ELSE`.
    fn case_results(&self) -> Vec<&Node> {
        match self {
            Node::Case {
                branches,
                otherwise,
                ..
            } => branches
                .iter()
                .map(|branch| &branch.then)
                .chain(otherwise.as_deref())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The operands this node compares with each other, for order or
    /// equality.
    fn compared_operands(&self) -> Vec<&Node> {
        match self {
            Node::Comparison { left, right, .. } | Node::IsDistinct { left, right, .. } => {
                vec![left, right]
            }
            Node::Quantified { left, .. } => vec![left],
            Node::Call {
                function: Function::Greatest | Function::Least,
                args,
            } => args.iter().collect(),
            Node::Between {
                operand, low, high, ..
            } => vec![operand, low, high],
            Node::InList { operand, list, .. } => std::iter::once(&**operand).chain(list).collect(),
            Node::Like {
                operand, pattern, ..
            } => vec![operand, pattern],
            Node::Case {
                operand: Some(operand),
                branches,
                ..
            } => std::iter::once(&**operand)
                .chain(branches.iter().map(|branch| &branch.when))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Each column compared with a text literal, with the literal
    /// (`status = 'paid'`, `status IN ('a', 'b')`, `CASE status WHEN 'a'`),
    /// deduplicated. Not a `LIKE` pattern, which is no value.
    pub fn columns_compared_with_texts(&self) -> Vec<(ColumnPath, String)> {
        let mut found = Vec::new();
        self.collect_compared_texts(&mut found);
        found
    }

    fn collect_compared_texts(&self, found: &mut Vec<(ColumnPath, String)>) {
        // `status = ANY('{paid,sent}')`: each element is a text compared.
        if let Node::Quantified { left, right, .. } = self
            && let Some(array) = super::arrays::literal_text(right)
            && let Ok(array) = super::arrays::parse_array(array)
        {
            for path in left.value_columns() {
                for element in array.elements.iter().flatten() {
                    let pair = (path.clone(), element.clone());
                    if !found.contains(&pair) {
                        found.push(pair);
                    }
                }
            }
        }
        if !matches!(self, Node::Like { .. }) {
            // A text beside a column in `coalesce`, `nullif` or a `CASE`
            // result takes the column's type too (`coalesce(mood, 'x')`).
            let mut operands = self.compared_operands();
            operands.extend(self.value_operands());
            let texts: Vec<&String> = operands
                .iter()
                .filter_map(|operand| match operand {
                    Node::Literal(Value::Text(text)) => Some(text),
                    _ => None,
                })
                .collect();
            for path in operands.iter().flat_map(|operand| operand.value_columns()) {
                for text in &texts {
                    let pair = (path.clone(), (*text).clone());
                    if !found.contains(&pair) {
                        found.push(pair);
                    }
                }
            }
        }
        for child in self.children() {
            child.collect_compared_texts(found);
        }
    }

    /// Every column referenced, deduplicated, in order of first appearance.
    pub fn columns(&self) -> Vec<ColumnPath> {
        let mut found = Vec::new();
        self.collect_columns(&mut found);
        found
    }

    /// The columns whose values this node reads, not only whether they are
    /// NULL: a column under `IS [NOT] NULL` alone is not among them, so
    /// that `closed_at IS NULL` does not count as computing with a
    /// `timestamptz` (trial 35).
    pub fn columns_beyond_nullness(&self) -> Vec<ColumnPath> {
        let mut found = Vec::new();
        self.collect_columns_beyond_nullness(&mut found);
        found
    }

    fn collect_columns_beyond_nullness(&self, found: &mut Vec<ColumnPath>) {
        match self {
            Node::IsNull { operand, .. } if matches!(**operand, Node::Column(_)) => {}
            Node::Column(path) if !found.contains(path) => found.push(path.clone()),
            _ => {
                for child in self.children() {
                    child.collect_columns_beyond_nullness(found);
                }
            }
        }
    }

    fn collect_columns(&self, found: &mut Vec<ColumnPath>) {
        if let Node::Column(path) = self
            && !found.contains(path)
        {
            found.push(path.clone());
        }
        for child in self.children() {
            child.collect_columns(found);
        }
    }
}
