//! How a motion field is written and read.
//!
//! Version 8 on ([`FieldLayout::Split`]), block by block in raster order: a flag saying whether
//! the block is split (for blocks with more than one cell inside the frame), then its units —
//! the whole block, or its cells in Z order — each with a flag saying whether its vector is the
//! predicted one ([`predicted`]: the median of the vectors left, above and above-right) and,
//! where it is not, the vector's change from it, x then y. Split flags are coded under one of
//! three binary tables by how many of the blocks left and above are split, "same" flags by how
//! many of the cells left and above kept theirs; the changes under one table of the scale
//! bank. Most of a camera frame's vectors follow their neighbours', and there a block costs a
//! fraction of a bit.
//!
//! Version 15 on ([`FieldLayout::Classes`]): the same, but each component of a change is coded
//! as binary flags, each group with its own chance: whether it is zero (the y component's only
//! where x's is, since a change is never zero in both), its sign, its magnitude's length in
//! bits (one flag per length it goes past: "longer than 1 bit", "longer than 2", …) and the
//! bits below the leading one. A camera frame's changes are small where the field is smooth
//! and tens of pixels where objects move apart from it, a mixture that no one Laplace table
//! fits (30 frames of `bikes` at level 3: an anchor's changes cost 177 bytes under the bank's
//! best table, 153 as flags, table bytes included).
//!
//! Version 16 on ([`FieldLayout::Coarse`]): as `Classes`, but a change of [`COARSE_LENGTH`]
//! bits or more has its lowest bit 0, not coded. From that version too a moved frame's field
//! has no length or stream of its own: its head ([`FieldSymbols`], [`FieldTables`]) comes
//! before the layer's, and its symbols open the frame's one stream.
//!
//! Version 17 on ([`FieldLayout::Modes`]): as `Coarse`, and a moved frame's field (one without a
//! guide) says before each block's split flag what the block keeps of its moved picture
//! ([`BlockMode`]): a flag "not all of it", under one of three tables by how many of the blocks
//! left and above keep less, then, where set, a flag "only the cells' means" (else the smooth
//! picture).
//!
//! Version 18 on ([`FieldLayout::Intra`]): as `Modes`, and where the "only the cells' means"
//! flag is not set, a flag "predicted from its own frame" ([`BlockMode::Intra`]); an intra
//! block then gives each of its cells inside the frame (Z order) a direction, three flags (its
//! bits, highest first, each under its own table), and has no split flag and no vector:
//! its cells take the predicted vector, as if it were coded unchanged, so the blocks after it
//! predict theirs as from any other block.
//!
//! Versions 3 to 7 ([`FieldLayout::Blocks`]): one vector per 16×16 block, its change from the
//! median always coded under one table.
//!
//! Bytes: the field's length (varint), then its body. `Split`: a mask of the groups used (bit g
//! for group g), one byte per group used — a flag group's chance of a set flag in 256ths
//! (1..=255), the change group's scale-bank index — then the ANS words. `Classes` and
//! `Coarse`: the mask as a varint, then the same. `Blocks`: the table index, then the words.

use crate::coders::CoderError;
use crate::entropy::{self, CategoricalTable, ScaleBank, StreamEnd, SymbolDecoder};
use crate::varint;

use super::super::intra::Direction;
use super::super::tables;
use super::{predicted, BlockMode, MotionField, MotionGrid, Side, MAX_COMPONENT};

/// How a file lays out its motion fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldLayout {
    /// Versions 3 to 7: a vector per 16×16 block, every change coded.
    Blocks,
    /// Versions 8 to 14: blocks split or whole, vectors that follow the median said by a flag.
    Split,
    /// Version 15: as `Split`, each change component coded as flags.
    Classes,
    /// Version 16: as `Classes`, a change of [`COARSE_LENGTH`] bits or more at half-pixel
    /// precision.
    Coarse,
    /// Version 17: as `Coarse`, and a mode per block in a moved frame's field.
    Modes,
    /// Version 18 on: as `Modes`, and the intra mode with its cells' directions.
    Intra,
}

/// From version 16 a change's magnitude of this many bits or more (32 quarter pixels, 8 pixels)
/// is even, and its lowest bit is not coded. Such changes are where something moves apart from
/// its neighbours, and their low bits were about a third of an anchor's field, each costing a
/// whole bit (30 frames of `bikes` against x264 medium: from 6 bits, −1.6 points; from 5, −0.9;
/// from 7, +0.4; keeping 5 significant bits, −1.2; 4, −1.5; `cityCC0` unchanged from 6).
const COARSE_LENGTH: u32 = 6;

impl FieldLayout {
    /// The layout the encoder writes.
    pub(crate) const WRITTEN: Self = Self::Intra;

    /// Whether changes are coded as flags.
    fn flag_changes(self) -> bool {
        matches!(
            self,
            Self::Classes | Self::Coarse | Self::Modes | Self::Intra
        )
    }

    /// Whether a field with no guide (a moved frame's) gives each block a mode.
    pub(in crate::coders::detail) fn has_modes(self) -> bool {
        matches!(self, Self::Modes | Self::Intra)
    }

    /// Whether its modes include [`BlockMode::Intra`].
    pub(in crate::coders::detail) fn has_intra(self) -> bool {
        self == Self::Intra
    }

    /// Low bits of a change's magnitude of `length` bits that are 0 and not coded.
    pub(super) fn dropped_bits(self, length: u32) -> u32 {
        u32::from(
            matches!(self, Self::Coarse | Self::Modes | Self::Intra) && length >= COARSE_LENGTH,
        )
    }
}

/// The change nearest `d` toward zero that a field of [`FieldLayout::WRITTEN`] can hold (every
/// layout can hold it).
pub(super) fn legal_change(d: i32) -> i32 {
    let length = u32::BITS - d.unsigned_abs().leading_zeros();
    let low = FieldLayout::WRITTEN.dropped_bits(length);
    d.signum() * ((d.unsigned_abs() >> low) << low) as i32
}

/// Split-flag groups (how many of the blocks left and above are split).
pub(super) const SPLIT_GROUPS: usize = 3;
/// Same-flag groups (how many of the cells left and above kept the predicted vector).
const SAME_GROUPS: usize = 3;
/// The group of the vectors' changes.
const CHANGE_GROUP: usize = SPLIT_GROUPS + SAME_GROUPS;
/// Table groups of a field.
const GROUPS: usize = CHANGE_GROUP + 1;
/// A field with a side per unit (version 14 on) also has "both sides" flag groups (how many
/// of the cells left of and above the unit's top-left cell take both) and the "after" flag's
/// group, which says which one side a unit takes.
const BOTH_GROUPS: usize = 3;
const AFTER_GROUP: usize = GROUPS + BOTH_GROUPS;
const GROUPS_WITH_SIDES: usize = AFTER_GROUP + 1;
/// In [`FieldLayout::Classes`] the change group's place holds the "component is zero" flag;
/// after the side groups come the sign's, the low bits', and one group per length flag.
const ZERO_GROUP: usize = CHANGE_GROUP;
const SIGN_GROUP: usize = GROUPS_WITH_SIDES;
const LOW_BITS_GROUP: usize = SIGN_GROUP + 1;
const LENGTH_GROUP: usize = LOW_BITS_GROUP + 1;
/// The longest magnitude of a change, in bits: two vectors within [`MAX_COMPONENT`] differ by
/// at most 2048.
const MAX_LENGTH: u32 = 12;
const GROUPS_WITH_CLASSES: usize = LENGTH_GROUP + MAX_LENGTH as usize - 1;
/// In [`FieldLayout::Modes`], the "keeps less than its moved picture" flag's groups (how many of
/// the blocks left and above do), then the "only the means" flag's.
const MODE_GROUP: usize = GROUPS_WITH_CLASSES;
const FLAT_GROUP: usize = MODE_GROUP + 3;
const GROUPS_WITH_MODES: usize = FLAT_GROUP + 1;
/// In [`FieldLayout::Intra`], the "predicted from its own frame" flag's group, then the
/// groups of a cell's direction's bits, highest first.
const INTRA_GROUP: usize = GROUPS_WITH_MODES;
const DIRECTION_GROUP: usize = INTRA_GROUP + 1;
const GROUPS_WITH_INTRA: usize = DIRECTION_GROUP + Direction::BITS;

/// One unit of a block: its top-left cell and its span in cells.
pub(super) type Unit = ((usize, usize), (usize, usize));

/// What the coder and the parser both know while they walk a field: the vectors so far, and
/// the flags the next groups depend on.
pub(super) struct Walk {
    pub(super) grid: MotionGrid,
    pub(super) vectors: Vec<(i32, i32)>,
    pub(super) decoded: Vec<bool>,
    pub(super) same: Vec<bool>,
    pub(super) split: Vec<bool>,
    /// Per block, its mode.
    pub(super) modes: Vec<BlockMode>,
    /// Whether the field's vectors are predicted by a guide (a bidirectional frame's).
    guided: bool,
    /// Per cell, the side it is predicted from (a field with a side per unit).
    pub(super) sides: Vec<Side>,
    /// A bidirectional frame's predicted vectors, one per cell (`Guide`); none for a frame
    /// whose vectors are predicted from their neighbours.
    guide: Option<Vec<(i32, i32)>>,
}

/// What a bidirectional frame's vectors are predicted from: half its anchor's, cell by cell
/// (`super::halved`). Motion that goes on at the same speed crosses half the anchor's way in
/// the frame between, so most of such a field costs a flag per unit.
pub(in crate::coders::detail) type Guide<'a> = Option<&'a [(i32, i32)]>;

/// What a parser must know of a field beyond its grid: a bidirectional frame's guide, and
/// whether the field gives each block a side.
#[derive(Debug, Clone, Copy)]
pub(in crate::coders::detail) struct Guided<'a> {
    pub(in crate::coders::detail) guide: Guide<'a>,
    pub(in crate::coders::detail) sides: bool,
}

/// A field coded up to its ANS stream: the head to write before the stream, and the symbols
/// for it, each under its table.
pub(in crate::coders::detail) struct FieldSymbols {
    /// The group mask and the table bytes given.
    pub(in crate::coders::detail) head: Vec<u8>,
    symbols: Vec<(usize, i32)>,
    flags: Vec<Option<CategoricalTable>>,
    change_index: u8,
    /// The tables in force after the field (what the next moved frame may keep).
    pub(in crate::coders::detail) in_force: tables::TableBytes,
}

impl FieldSymbols {
    /// The head, then a stream of the field's own that ends as `end` says (versions before 16).
    fn to_bytes(&self, end: StreamEnd) -> Result<Vec<u8>, CoderError> {
        let mut items = Vec::new();
        self.push_items(&mut items);
        let mut bytes = self.head.clone();
        entropy::write_stream(&mut bytes, &entropy::encode(items.into_iter())?, end);
        Ok(bytes)
    }

    /// Appends the field's symbols, each with its table, to a stream's `items`.
    pub(in crate::coders::detail) fn push_items<'a>(
        &'a self,
        items: &mut Vec<(&'a CategoricalTable, i32)>,
    ) {
        let bank = ScaleBank::get();
        for &(g, v) in &self.symbols {
            match &self.flags[g] {
                Some(table) => items.push((table, v)),
                None => bank.push_symbols(self.change_index, v, items),
            }
        }
    }
}

/// A field's head as read: the tables its symbols are coded under, and the tables in force
/// after it.
pub(in crate::coders::detail) struct FieldTables {
    layout: FieldLayout,
    flags: Vec<Option<CategoricalTable>>,
    change_index: Option<u8>,
    /// The tables in force after the field.
    pub(in crate::coders::detail) in_force: tables::TableBytes,
}

impl Walk {
    /// A walk of `grid` whose vectors are predicted by `guide` (one per cell) where given, else
    /// by their neighbours.
    pub(super) fn guided(grid: MotionGrid, guide: Guide) -> Self {
        Self {
            grid,
            vectors: vec![(0, 0); grid.cells()],
            decoded: vec![false; grid.cells()],
            same: vec![false; grid.cells()],
            split: vec![false; grid.blocks().0 * grid.blocks().1],
            modes: vec![BlockMode::Moved; grid.blocks().0 * grid.blocks().1],
            guided: guide.is_some(),
            sides: vec![Side::Both; grid.cells()],
            guide: guide.filter(|g| g.len() == grid.cells()).map(<[_]>::to_vec),
        }
    }

    pub(super) fn split_group(&self, bx: usize, by: usize) -> usize {
        let bcols = self.grid.blocks().0;
        let left = bx > 0 && self.split[by * bcols + bx - 1];
        let above = by > 0 && self.split[(by - 1) * bcols + bx];
        usize::from(left) + usize::from(above)
    }

    /// The group of block `(bx, by)`'s "keeps less" flag.
    fn mode_group(&self, bx: usize, by: usize) -> usize {
        let bcols = self.grid.blocks().0;
        let left = bx > 0 && self.modes[by * bcols + bx - 1] != BlockMode::Moved;
        let above = by > 0 && self.modes[(by - 1) * bcols + bx] != BlockMode::Moved;
        MODE_GROUP + usize::from(left) + usize::from(above)
    }

    /// Whether the walk's field gives its blocks modes in `layout`.
    fn codes_modes(&self, layout: FieldLayout) -> bool {
        layout.has_modes() && !self.guided
    }

    /// The group of the "both sides" flag of the unit whose top-left cell is `(c, r)`.
    fn both_group(&self, (c, r): (usize, usize)) -> usize {
        let cols = self.grid.cols;
        let left = c > 0 && self.sides[r * cols + c - 1] == Side::Both;
        let above = r > 0 && self.sides[(r - 1) * cols + c] == Side::Both;
        GROUPS + usize::from(left) + usize::from(above)
    }

    /// Records the unit's side in all its cells.
    fn set_side(&mut self, ((c, r), (sw, sh)): Unit, side: Side) {
        for row in r..r + sh {
            for col in c..c + sw {
                self.sides[row * self.grid.cols + col] = side;
            }
        }
    }

    pub(super) fn same_group(&self, (c, r): (usize, usize)) -> usize {
        let cols = self.grid.cols;
        let left = c > 0 && self.same[r * cols + c - 1];
        let above = r > 0 && self.same[(r - 1) * cols + c];
        SPLIT_GROUPS + usize::from(left) + usize::from(above)
    }

    pub(super) fn predictor(&self, (cell, span): Unit) -> (i32, i32) {
        match &self.guide {
            Some(guide) => guide[cell.1 * self.grid.cols + cell.0],
            None => predicted(&self.vectors, &self.decoded, self.grid.cols, cell, span.0),
        }
    }

    /// The units of block `(bx, by)`, split or whole.
    pub(super) fn units(&self, bx: usize, by: usize, split: bool) -> Vec<Unit> {
        let (cells, n) = self.grid.block_cells(bx, by);
        if split {
            cells[..n].iter().map(|&c| (c, (1, 1))).collect()
        } else {
            vec![(cells[0], self.grid.block_span(bx, by))]
        }
    }

    /// Records the unit's vector in all its cells.
    pub(super) fn set(&mut self, ((c, r), (sw, sh)): Unit, v: (i32, i32), same: bool) {
        for row in r..r + sh {
            for col in c..c + sw {
                let i = row * self.grid.cols + col;
                self.vectors[i] = v;
                self.decoded[i] = true;
                self.same[i] = same;
            }
        }
    }
}

impl Walk {
    /// Takes back a unit [`set`](Self::set) on trial: its cells are not decoded.
    pub(super) fn unset(&mut self, ((c, r), (sw, sh)): Unit) {
        for row in r..r + sh {
            for col in c..c + sw {
                let i = row * self.grid.cols + col;
                self.decoded[i] = false;
                self.same[i] = false;
            }
        }
    }
}

impl MotionField {
    /// Gives each intra block (a field without a guide) what the parser will give it: no split,
    /// and the predicted vector in all its cells (which the blocks after it predict from). The
    /// vectors after it, predicted now from other vectors, are moved where their change from
    /// the prediction is one the layout cannot hold ([`super::legal_vector`]). Whether any
    /// vector changed.
    pub(in crate::coders::detail) fn settle_intra_blocks(&mut self, grid: MotionGrid) -> bool {
        let Some(modes) = &self.modes else {
            return false;
        };
        let mut walk = Walk::guided(grid, None);
        let (bcols, brows) = grid.blocks();
        for by in 0..brows {
            for bx in 0..bcols {
                let b = by * bcols + bx;
                if modes[b].is_intra() {
                    self.split[b] = false;
                    let unit = walk.units(bx, by, false)[0];
                    walk.set(unit, walk.predictor(unit), true);
                    continue;
                }
                for unit in walk.units(bx, by, self.split[b]) {
                    let ((c, r), _) = unit;
                    let p = walk.predictor(unit);
                    let v = super::legal_vector(self.vectors[r * grid.cols + c], p);
                    walk.set(unit, v, v == p);
                }
            }
        }
        // The walk has set every cell's vector, as the parser will.
        let changed = walk.vectors != self.vectors;
        self.vectors = walk.vectors;
        changed
    }

    /// The symbols of the field in `layout` (`Split`, `Classes` or `Coarse`), in order, each
    /// with its group.
    fn symbols(
        &self,
        grid: MotionGrid,
        guide: Guide,
        layout: FieldLayout,
    ) -> Result<Vec<(usize, i32)>, CoderError> {
        let mut walk = Walk::guided(grid, guide);
        let mut out = Vec::with_capacity(2 * grid.cells());
        let (bcols, brows) = grid.blocks();
        for by in 0..brows {
            for bx in 0..bcols {
                let b = by * bcols + bx;
                if walk.codes_modes(layout) {
                    let mode = self.modes.as_ref().map_or(BlockMode::Moved, |m| m[b]);
                    push_mode(mode, walk.mode_group(bx, by), layout, &mut out)?;
                    walk.modes[b] = mode;
                    if let BlockMode::Intra(directions) = mode {
                        for &direction in &directions[..grid.block_cells(bx, by).1] {
                            let d = direction.index() as i32;
                            for k in 0..Direction::BITS {
                                let bit = (d >> (Direction::BITS - 1 - k)) & 1;
                                out.push((DIRECTION_GROUP + k, bit));
                            }
                        }
                        let unit = walk.units(bx, by, false)[0];
                        walk.set(unit, walk.predictor(unit), true);
                        continue;
                    }
                }
                let splittable = grid.block_cells(bx, by).1 > 1;
                let split = splittable && self.split[b];
                if splittable {
                    out.push((walk.split_group(bx, by), i32::from(split)));
                }
                walk.split[b] = split;
                for unit in walk.units(bx, by, split) {
                    let p = walk.predictor(unit);
                    let ((c, r), _) = unit;
                    let v = self.vectors[r * grid.cols + c];
                    out.push((walk.same_group(unit.0), i32::from(v == p)));
                    let (dx, dy) = (v.0 - p.0, v.1 - p.1);
                    match layout {
                        _ if v == p => {}
                        _ if layout.flag_changes() => {
                            push_change(dx, true, layout, &mut out)?;
                            push_change(dy, dx != 0, layout, &mut out)?;
                        }
                        _ => out.extend([(CHANGE_GROUP, dx), (CHANGE_GROUP, dy)]),
                    }
                    if let Some(sides) = &self.sides {
                        let side = sides[r * grid.cols + c];
                        out.push((walk.both_group(unit.0), i32::from(side == Side::Both)));
                        if side != Side::Both {
                            out.push((AFTER_GROUP, i32::from(side == Side::After)));
                        }
                        walk.set_side(unit, side);
                    }
                    walk.set(unit, v, v == p);
                }
            }
        }
        debug_assert_eq!(
            walk.vectors, self.vectors,
            "a whole block's cells share a vector"
        );
        Ok(out)
    }

    /// The field's bytes, in [`FieldLayout::WRITTEN`]: its length (varint), then its body.
    #[cfg(test)]
    pub(in crate::coders::detail) fn code(
        &self,
        grid: MotionGrid,
        out: &mut Vec<u8>,
    ) -> Result<(), CoderError> {
        self.code_keeping(
            grid,
            None,
            (FieldLayout::WRITTEN, StreamEnd::Sealed),
            &[],
            out,
        )
        .map(drop)
    }

    /// The field's bytes, in `layout` (`Split`, `Classes` or `Coarse`: block fields are only read),
    /// keeping the tables `kept` of the last moved frame where they cost little more than the
    /// field's own (version 12 on; none kept before): its length (varint), then its body, a
    /// stream of its own. Returns the tables in force after it. A bidirectional frame's vectors
    /// are predicted by `guide`.
    pub(in crate::coders::detail) fn code_keeping(
        &self,
        grid: MotionGrid,
        guide: Guide,
        (layout, end): (FieldLayout, StreamEnd),
        kept: &[Option<u8>],
        out: &mut Vec<u8>,
    ) -> Result<tables::TableBytes, CoderError> {
        let coded = self.symbols_keeping(grid, guide, layout, kept)?;
        let body = coded.to_bytes(end)?;
        varint::write_u64(out, body.len() as u64);
        out.extend_from_slice(&body);
        Ok(coded.in_force)
    }

    /// The field up to its ANS stream, as [`code_keeping`](Self::code_keeping) codes it: its
    /// head (the group mask and table bytes) and its symbols under their tables, for a stream
    /// it may share (version 16 on, with the layer after it).
    pub(in crate::coders::detail) fn symbols_keeping(
        &self,
        grid: MotionGrid,
        guide: Guide,
        layout: FieldLayout,
        kept: &[Option<u8>],
    ) -> Result<FieldSymbols, CoderError> {
        let symbols = self.symbols(grid, guide, layout)?;
        let groups = self.groups(layout);
        let members = tables::members(groups, &symbols);
        let is_flag = |g: usize| is_flag(layout, g);
        let own: Vec<Option<u8>> = members
            .iter()
            .enumerate()
            .map(|(g, m)| tables::own_byte(is_flag(g), m))
            .collect();
        let bits = |g: usize, byte| tables::bits(is_flag(g), byte, &members[g]);
        let given = tables::given(&own, kept, bits);
        let in_force = tables::merged(kept, &given);
        let mask: u32 = given
            .iter()
            .enumerate()
            .filter(|(_, byte)| byte.is_some())
            .map(|(g, _)| 1 << g)
            .sum();
        let mut head = Vec::new();
        match (layout, &self.sides) {
            _ if layout.flag_changes() => varint::write_u64(&mut head, u64::from(mask)),
            (_, Some(_)) => head.extend((mask as u16).to_le_bytes()),
            (_, None) => head.push(mask as u8),
        }
        head.extend(given.iter().flatten());
        Ok(FieldSymbols {
            head,
            symbols,
            flags: flag_tables(&in_force, layout)?,
            change_index: in_force[CHANGE_GROUP].unwrap_or(0),
            in_force,
        })
    }

    /// Table groups the field codes in `layout` ([`table_groups`]).
    fn groups(&self, layout: FieldLayout) -> usize {
        table_groups(layout, self.sides.is_some())
    }

    /// Reads a field of `grid` laid out as `layout` from the front of `input`, leaving the
    /// rest.
    #[cfg(test)]
    pub(in crate::coders::detail) fn parse(
        input: &mut &[u8],
        grid: MotionGrid,
        end: StreamEnd,
        layout: FieldLayout,
    ) -> Result<Self, CoderError> {
        let guided = Guided {
            guide: None,
            sides: false,
        };
        Self::parse_keeping(input, grid, end, layout, guided, &[]).map(|(field, _)| field)
    }

    /// Reads what [`code_keeping`](Self::code_keeping) wrote over the tables `kept`; also
    /// returns the tables in force after it (none for [`FieldLayout::Blocks`]).
    pub(in crate::coders::detail) fn parse_keeping(
        input: &mut &[u8],
        grid: MotionGrid,
        end: StreamEnd,
        layout: FieldLayout,
        guided: Guided,
        kept: &[Option<u8>],
    ) -> Result<(Self, tables::TableBytes), CoderError> {
        let len = varint::read_u64(input).map_err(|e| corrupt(&format!("length: {e}")))?;
        if len > input.len() as u64 || len == 0 {
            return Err(corrupt("its length runs past the payload"));
        }
        let (body, rest) = input.split_at(len as usize);
        *input = rest;
        if layout == FieldLayout::Blocks {
            return Ok((parse_blocks(body, grid, end)?, Vec::new()));
        }
        let mut words = body;
        let tables = FieldTables::read(&mut words, layout, guided.sides, kept)?;
        let mut decoder = SymbolDecoder::new(words, end)?;
        let field = tables.parse_symbols(grid, guided, &mut decoder)?;
        decoder.finish()?;
        Ok((field, tables.in_force))
    }
}

/// Appends block mode `mode`'s flags (not an intra block's directions), the first under
/// `group`: "keeps less than its moved picture", then "only the cells' means", then in
/// [`FieldLayout::Intra`] "predicted from its own frame".
fn push_mode(
    mode: BlockMode,
    group: usize,
    layout: FieldLayout,
    out: &mut Vec<(usize, i32)>,
) -> Result<(), CoderError> {
    out.push((group, i32::from(mode != BlockMode::Moved)));
    if mode != BlockMode::Moved {
        out.push((FLAT_GROUP, i32::from(mode == BlockMode::Flat)));
    }
    match mode {
        BlockMode::Smooth | BlockMode::Intra(_) if layout.has_intra() => {
            out.push((INTRA_GROUP, i32::from(mode.is_intra())));
        }
        BlockMode::Intra(_) => return Err(corrupt("an intra block in a field without them")),
        _ => {}
    }
    Ok(())
}

/// Table groups a field codes in `layout`: more with a side per unit (`sides`), more again
/// with flag-coded changes, and the mode flags' in [`FieldLayout::Modes`].
fn table_groups(layout: FieldLayout, sides: bool) -> usize {
    match layout {
        _ if layout.has_intra() => GROUPS_WITH_INTRA,
        _ if layout.has_modes() => GROUPS_WITH_MODES,
        _ if layout.flag_changes() => GROUPS_WITH_CLASSES,
        _ if sides => GROUPS_WITH_SIDES,
        _ => GROUPS,
    }
}

fn corrupt(what: &str) -> CoderError {
    CoderError::Payload(format!("motion field: {what}"))
}

/// Whether group `g` of a field in `layout` codes flags (all but `Split`'s change group).
fn is_flag(layout: FieldLayout, g: usize) -> bool {
    layout.flag_changes() || g != CHANGE_GROUP
}

/// The binary tables of the flag groups among `tables` (the field's, by group).
fn flag_tables(
    tables: &[Option<u8>],
    layout: FieldLayout,
) -> Result<Vec<Option<CategoricalTable>>, CoderError> {
    tables
        .iter()
        .enumerate()
        .map(|(g, &byte)| match byte {
            Some(k) if is_flag(layout, g) => Ok(Some(tables::flag_table(k)?)),
            _ => Ok(None),
        })
        .collect()
}

/// The flags of a change component `d` in `layout` (`Classes` or `Coarse`), each with its
/// group: zero or not (where it `may_be_zero`), then, where not, its sign, a flag per bit
/// length its magnitude goes past and one more where it stops short of [`MAX_LENGTH`], then the
/// bits below its leading one, highest first, but those the layout drops.
/// A change the layout cannot hold (an odd large one in `Coarse`) is an error: the encoder's
/// search rounds every change it chooses ([`legal_change`]).
fn push_change(
    d: i32,
    may_be_zero: bool,
    layout: FieldLayout,
    out: &mut Vec<(usize, i32)>,
) -> Result<(), CoderError> {
    if may_be_zero {
        out.push((ZERO_GROUP, i32::from(d == 0)));
    }
    if d == 0 {
        return Ok(());
    }
    out.push((SIGN_GROUP, i32::from(d < 0)));
    let magnitude = d.unsigned_abs();
    let length = u32::BITS - magnitude.leading_zeros();
    debug_assert!(length <= MAX_LENGTH, "a change beyond the vectors' range");
    for past in 1..length {
        out.push((LENGTH_GROUP + past as usize - 1, 1));
    }
    if length < MAX_LENGTH {
        out.push((LENGTH_GROUP + length as usize - 1, 0));
    }
    let low = layout.dropped_bits(length);
    if magnitude & ((1 << low) - 1) != 0 {
        return Err(corrupt(&format!("a change of {d} its layout cannot hold")));
    }
    for bit in (low..length - 1).rev() {
        out.push((LOW_BITS_GROUP, ((magnitude >> bit) & 1) as i32));
    }
    Ok(())
}

/// Reads what [`push_change`] wrote in `layout`, each flag through `flag`.
fn read_change(
    may_be_zero: bool,
    layout: FieldLayout,
    mut flag: impl FnMut(usize) -> Result<bool, CoderError>,
) -> Result<i32, CoderError> {
    if may_be_zero && flag(ZERO_GROUP)? {
        return Ok(0);
    }
    let negative = flag(SIGN_GROUP)?;
    let mut length = 1;
    while length < MAX_LENGTH && flag(LENGTH_GROUP + length as usize - 1)? {
        length += 1;
    }
    let mut magnitude = 1i32;
    let low = layout.dropped_bits(length);
    for _ in 1 + low..length {
        magnitude = (magnitude << 1) | i32::from(flag(LOW_BITS_GROUP)?);
    }
    magnitude <<= low;
    Ok(if negative { -magnitude } else { magnitude })
}

/// A component that stays within [`MAX_COMPONENT`].
fn component(p: i32, d: i32) -> Result<i32, CoderError> {
    let v = p.saturating_add(d);
    if v.abs() > MAX_COMPONENT {
        return Err(corrupt("a vector beyond 256 pixels"));
    }
    Ok(v)
}

impl FieldTables {
    /// Reads a field's head (`Split`, `Classes` or `Coarse`) from the front of `input`: its
    /// group mask and the table bytes given, over the tables `kept`.
    pub(in crate::coders::detail) fn read(
        input: &mut &[u8],
        layout: FieldLayout,
        sides: bool,
        kept: &[Option<u8>],
    ) -> Result<Self, CoderError> {
        let groups = table_groups(layout, sides);
        let mask = if layout.flag_changes() {
            varint::read_u64(input).map_err(|e| corrupt(&format!("mask: {e}")))?
        } else {
            // One byte, or two where the field has sides.
            let mask_len = if sides { 2 } else { 1 };
            if input.len() < mask_len {
                return Err(corrupt("no group mask"));
            }
            let (mask, rest) = input.split_at(mask_len);
            *input = rest;
            mask.iter()
                .rev()
                .fold(0u64, |m, &byte| (m << 8) | u64::from(byte))
        };
        if mask >> groups != 0 {
            return Err(corrupt("a group mask with unknown groups"));
        }
        if kept.len() > groups.max(GROUPS_WITH_SIDES) {
            return Err(corrupt("kept tables of another layout"));
        }
        let mut given = vec![None; groups];
        for (g, slot) in given.iter_mut().enumerate() {
            if mask & (1 << g) == 0 {
                continue;
            }
            let (&byte, after) = input
                .split_first()
                .ok_or_else(|| corrupt("table bytes cut"))?;
            *input = after;
            if !is_flag(layout, g) {
                entropy::check_table_index(byte)?;
            } else if byte == 0 {
                return Err(corrupt("a flag's chance of 0"));
            }
            *slot = Some(byte);
        }
        let mut in_force = tables::merged(kept, &given);
        in_force.resize(in_force.len().max(groups), None);
        Ok(Self {
            layout,
            flags: flag_tables(&in_force, layout)?,
            change_index: in_force[CHANGE_GROUP].filter(|_| !layout.flag_changes()),
            in_force,
        })
    }

    /// Reads the field's symbols from `decoder` (which the caller finishes).
    pub(in crate::coders::detail) fn parse_symbols(
        &self,
        grid: MotionGrid,
        Guided { guide, sides }: Guided,
        decoder: &mut SymbolDecoder,
    ) -> Result<MotionField, CoderError> {
        let classes = self.layout.flag_changes();
        let bank = ScaleBank::get();
        let flag = |g: usize, decoder: &mut SymbolDecoder| -> Result<bool, CoderError> {
            let table = self.flags[g]
                .as_ref()
                .ok_or_else(|| corrupt("a flag with no table"))?;
            let set = decoder.decode(table) == 1;
            decoder.check()?;
            Ok(set)
        };
        let mut walk = Walk::guided(grid, guide);
        let (bcols, brows) = grid.blocks();
        let modes = walk.codes_modes(self.layout);
        for by in 0..brows {
            for bx in 0..bcols {
                if modes && flag(walk.mode_group(bx, by), decoder)? {
                    let mode = match flag(FLAT_GROUP, decoder)? {
                        true => BlockMode::Flat,
                        false if self.layout.has_intra() && flag(INTRA_GROUP, decoder)? => {
                            let mut directions = [Direction::Dc; 4];
                            for d in &mut directions[..grid.block_cells(bx, by).1] {
                                let mut index = 0;
                                for k in 0..Direction::BITS {
                                    let bit = flag(DIRECTION_GROUP + k, decoder)?;
                                    index = 2 * index + usize::from(bit);
                                }
                                *d = Direction::from_index(index);
                            }
                            BlockMode::Intra(directions)
                        }
                        false => BlockMode::Smooth,
                    };
                    walk.modes[by * bcols + bx] = mode;
                    if mode.is_intra() {
                        let unit = walk.units(bx, by, false)[0];
                        walk.set(unit, walk.predictor(unit), true);
                        continue;
                    }
                }
                let split =
                    grid.block_cells(bx, by).1 > 1 && flag(walk.split_group(bx, by), decoder)?;
                walk.split[by * bcols + bx] = split;
                for unit in walk.units(bx, by, split) {
                    let p = walk.predictor(unit);
                    let same = flag(walk.same_group(unit.0), decoder)?;
                    let v = if same {
                        p
                    } else if classes {
                        let dx = read_change(true, self.layout, |g| flag(g, decoder))?;
                        let dy = read_change(dx != 0, self.layout, |g| flag(g, decoder))?;
                        (component(p.0, dx)?, component(p.1, dy)?)
                    } else {
                        let index = self
                            .change_index
                            .ok_or_else(|| corrupt("a change with no table"))?;
                        let dx = bank.decode(index, decoder)?;
                        let dy = bank.decode(index, decoder)?;
                        (component(p.0, dx)?, component(p.1, dy)?)
                    };
                    if sides {
                        let side = match flag(walk.both_group(unit.0), decoder)? {
                            true => Side::Both,
                            false if flag(AFTER_GROUP, decoder)? => Side::After,
                            false => Side::Before,
                        };
                        walk.set_side(unit, side);
                    }
                    walk.set(unit, v, same);
                }
            }
        }
        Ok(MotionField {
            vectors: walk.vectors,
            split: walk.split,
            sides: sides.then_some(walk.sides),
            modes: modes.then_some(walk.modes),
        })
    }
}

/// A field of versions 3 to 7: a vector per block, read on the block grid and given to each
/// of the block's cells.
fn parse_blocks(body: &[u8], grid: MotionGrid, end: StreamEnd) -> Result<MotionField, CoderError> {
    let (&index, words) = body.split_first().ok_or_else(|| corrupt("no table"))?;
    let index = entropy::check_table_index(index)?;
    let mut decoder = SymbolDecoder::new(words, end)?;
    let bank = ScaleBank::get();
    let (bcols, brows) = grid.blocks();
    let mut blocks = vec![(0, 0); bcols * brows];
    let mut decoded = vec![false; bcols * brows];
    for b in 0..bcols * brows {
        let p = predicted(&blocks, &decoded, bcols, (b % bcols, b / bcols), 1);
        let dx = bank.decode(index, &mut decoder)?;
        let dy = bank.decode(index, &mut decoder)?;
        blocks[b] = (component(p.0, dx)?, component(p.1, dy)?);
        decoded[b] = true;
    }
    decoder.finish()?;
    let vectors = (0..grid.cells())
        .map(|i| blocks[(i / grid.cols / 2) * bcols + (i % grid.cols) / 2])
        .collect();
    Ok(MotionField {
        vectors,
        split: vec![false; bcols * brows],
        sides: None,
        modes: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{block_of_cell, cell_directions};
    use super::*;

    /// A field of `grid` with some blocks split, some vectors following their neighbours'
    /// and some not.
    fn field(grid: MotionGrid, seed: u32) -> MotionField {
        let (bcols, brows) = grid.blocks();
        let mut vectors = vec![(0, 0); grid.cells()];
        let mut split = vec![false; bcols * brows];
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 16) as i32
        };
        for by in 0..brows {
            for bx in 0..bcols {
                let (cells, n) = grid.block_cells(bx, by);
                split[by * bcols + bx] = n > 1 && next() % 3 == 0;
                let whole = (next() % 9 - 4, next() % 5 - 2);
                for &(c, r) in &cells[..n] {
                    vectors[r * grid.cols + c] = if split[by * bcols + bx] {
                        (next() % 41 - 20, next() % 7 - 3)
                    } else {
                        whole
                    };
                }
            }
        }
        MotionField {
            vectors,
            split,
            sides: None,
            modes: None,
        }
    }

    /// The bytes of `field` in `layout`, with nothing kept.
    fn coded(field: &MotionField, grid: MotionGrid, layout: FieldLayout) -> Vec<u8> {
        let mut bytes = Vec::new();
        field
            .code_keeping(grid, None, (layout, StreamEnd::Sealed), &[], &mut bytes)
            .unwrap();
        bytes
    }

    #[test]
    fn large_changes_lose_their_lowest_bit_from_version_16_and_read_back() {
        // What the search may choose: large changes rounded toward zero to even, small ones
        // kept.
        for (d, legal) in [(0, 0), (31, 31), (-31, -31), (32, 32), (33, 32), (-33, -32)] {
            assert_eq!(legal_change(d), legal, "{d}");
        }
        for d in -3000..3000 {
            let legal = legal_change(d);
            assert_eq!(legal_change(legal), legal);
            assert!((d - legal).abs() <= 1 && legal.abs() <= d.abs());
        }
        // Fields with changes of every size (vectors of even quarter pixels, so every change
        // is even and both layouts hold it): the same field, a flag fewer per large change.
        for (w, h, seed) in [(64, 48, 1), (72, 40, 4), (160, 96, 6)] {
            let grid = MotionGrid::new(w, h);
            let mut field = field(grid, seed);
            field
                .vectors
                .iter_mut()
                .for_each(|v| *v = (4 * v.0, 4 * v.1));
            let flags = |layout| field.symbols(grid, None, layout).unwrap();
            let (coarse, fine) = (flags(FieldLayout::Coarse), flags(FieldLayout::Classes));
            // A length flag "more than 5 bits" set: a change of 6 bits or more.
            let past_five = (LENGTH_GROUP + COARSE_LENGTH as usize - 2, 1);
            let large = fine.iter().filter(|&&flag| flag == past_five).count();
            assert!(large > 0, "no large change");
            assert_eq!(coarse.len() + large, fine.len());
            let coarse = coded(&field, grid, FieldLayout::Coarse);
            let fine = coded(&field, grid, FieldLayout::Classes);
            for (bytes, layout) in [(coarse, FieldLayout::Coarse), (fine, FieldLayout::Classes)] {
                let parsed = MotionField::parse(&mut &bytes[..], grid, StreamEnd::Sealed, layout);
                assert_eq!(parsed.unwrap(), field, "{w}x{h} {layout:?}");
            }
        }
    }

    #[test]
    fn a_field_parses_back_exactly_and_cut_ones_are_errors() {
        for layout in [
            FieldLayout::Split,
            FieldLayout::Classes,
            FieldLayout::Coarse,
        ] {
            // (`Modes` fields parse back with every block's mode: below.)
            for (w, h, seed) in [(64, 48, 1), (40, 20, 2), (8, 8, 3), (72, 40, 4), (17, 9, 5)] {
                let grid = MotionGrid::new(w, h);
                let field = field(grid, seed);
                let mut bytes = coded(&field, grid, layout);
                bytes.extend([9, 9]);
                let mut input = &bytes[..];
                let parsed = MotionField::parse(&mut input, grid, StreamEnd::Sealed, layout);
                assert_eq!(parsed.unwrap(), field, "{w}x{h} {layout:?}");
                assert_eq!(input, &[9, 9]);
                for cut in 0..bytes.len() - 2 {
                    let mut input = &bytes[..cut];
                    assert!(
                        MotionField::parse(&mut input, grid, StreamEnd::Sealed, layout).is_err()
                    );
                }
            }
        }
    }

    #[test]
    fn changes_as_large_as_the_range_allows_parse_back_as_flags_and_cost_less_than_one_table() {
        // Neighbours at opposite ends of the range (changes of up to 2048 quarter pixels, the
        // longest length), and a smooth field with a few far jumps, the mixture of a camera
        // frame where objects move apart from the background.
        let grid = MotionGrid::new(96, 64);
        let (bcols, brows) = grid.blocks();
        let mut extreme = field(grid, 11);
        for (i, v) in extreme.vectors.iter_mut().enumerate() {
            let sign = if (i / grid.cols + i).is_multiple_of(2) {
                1
            } else {
                -1
            };
            *v = (sign * MAX_COMPONENT, -sign * (i as i32 % 7));
        }
        extreme.split = vec![true; bcols * brows];
        let wide = MotionGrid::new(640, 272);
        let (bcols, brows) = wide.blocks();
        let mut mixed = field(wide, 12);
        mixed.split = vec![false; bcols * brows];
        for (i, v) in mixed.vectors.iter_mut().enumerate() {
            let (c, r) = (i % wide.cols, i / wide.cols);
            *v = match (c / 2 + r / 2 * bcols) % 5 {
                0 => (160 + (c as i32 / 2) * 9, -70 + (r as i32 / 2) * 13),
                _ => (4, -1),
            };
        }
        for (field, grid) in [(extreme, grid), (mixed.clone(), wide)] {
            let bytes = coded(&field, grid, FieldLayout::Classes);
            let layout = FieldLayout::Classes;
            let parsed = MotionField::parse(&mut &bytes[..], grid, StreamEnd::Sealed, layout);
            assert_eq!(parsed.unwrap(), field);
        }
        let (flags, table) = (
            coded(&mixed, wide, FieldLayout::Classes).len(),
            coded(&mixed, wide, FieldLayout::Split).len(),
        );
        assert!(
            flags < table,
            "{flags} bytes as flags, {table} under one table"
        );
    }

    #[test]
    fn block_modes_parse_back_in_moved_fields_and_guided_fields_have_none() {
        let layout = FieldLayout::Modes;
        for (w, h, seed) in [(64, 48, 1), (40, 20, 2), (8, 8, 3), (17, 9, 5)] {
            let grid = MotionGrid::new(w, h);
            let (bcols, brows) = grid.blocks();
            let mut field = field(grid, seed);
            let plain = coded(&field, grid, FieldLayout::Coarse);
            // A field that says no modes has every block keep its moved picture.
            let parse = |bytes: &[u8]| {
                MotionField::parse(&mut &bytes[..], grid, StreamEnd::Sealed, layout).unwrap()
            };
            let all_moved = parse(&coded(&field, grid, layout));
            assert_eq!(all_moved.modes, Some(vec![BlockMode::Moved; bcols * brows]));
            let modes: Vec<BlockMode> = (0..bcols * brows)
                .map(|b| BlockMode::FROM_MOVED[(b * 7 + seed as usize) % 5 % 3])
                .collect();
            field.modes = Some(modes);
            let bytes = coded(&field, grid, layout);
            assert_eq!(parse(&bytes), field, "{w}x{h}");
            assert!(bytes.len() > plain.len());
            for cut in 0..bytes.len() {
                let mut input = &bytes[..cut];
                assert!(MotionField::parse(&mut input, grid, StreamEnd::Sealed, layout).is_err());
            }
        }
        // A bidirectional frame's field (under a guide) codes none, whatever it holds.
        let grid = MotionGrid::new(72, 40);
        let guide = vec![(1, 2); grid.cells()];
        let mut field = field(grid, 9);
        let guided = |field: &MotionField| {
            let mut bytes = Vec::new();
            let end = (layout, StreamEnd::Sealed);
            field
                .code_keeping(grid, Some(&guide), end, &[], &mut bytes)
                .unwrap();
            bytes
        };
        let without = guided(&field);
        field.modes = Some(vec![BlockMode::Flat; grid.blocks().0 * grid.blocks().1]);
        assert_eq!(guided(&field), without);
        let parsed = MotionField::parse_keeping(
            &mut &without[..],
            grid,
            StreamEnd::Sealed,
            layout,
            Guided {
                guide: Some(&guide),
                sides: false,
            },
            &[],
        )
        .unwrap()
        .0;
        assert_eq!(parsed.modes, None);
        assert_eq!(parsed.vectors, field.vectors);
    }

    #[test]
    fn intra_blocks_parse_back_with_their_directions_and_no_vector_of_their_own() {
        let layout = FieldLayout::Intra;
        for (w, h, seed) in [(64, 48, 1), (40, 20, 2), (8, 8, 3), (17, 9, 5)] {
            let grid = MotionGrid::new(w, h);
            let (bcols, brows) = grid.blocks();
            let mut field = field(grid, seed);
            let modes: Vec<BlockMode> = (0..bcols * brows)
                .map(|b| match (b * 7 + seed as usize) % 6 {
                    0 | 1 | 3 => BlockMode::Intra(std::array::from_fn(|i| {
                        Direction::from_index(b + 3 * i + seed as usize)
                    })),
                    k => BlockMode::FROM_MOVED[k - 2 - usize::from(k > 3)],
                })
                .collect();
            let intra = modes.iter().filter(|m| m.is_intra()).count();
            assert!(intra > 0, "{w}x{h}");
            field.modes = Some(modes);
            let searched = field.clone();
            field.settle_intra_blocks(grid);
            // Blocks not intra keep what was searched for them, within the change the layout
            // drops (a quarter pixel where it is 32 or more).
            let modes = field.modes.clone().unwrap();
            for (c, (&settled, &before)) in field.vectors.iter().zip(&searched.vectors).enumerate()
            {
                if !modes[block_of_cell(grid, c)].is_intra() {
                    let near =
                        (settled.0 - before.0).abs() <= 1 && (settled.1 - before.1).abs() <= 1;
                    assert!(near, "{w}x{h} cell {c}: {settled:?} from {before:?}");
                }
            }
            // The directions of cells outside the frame are not coded: they parse as DC.
            let field = field.with_directions(grid, &cell_directions(grid, &modes));
            let bytes = coded(&field, grid, layout);
            let parse =
                |bytes: &[u8]| MotionField::parse(&mut &bytes[..], grid, StreamEnd::Sealed, layout);
            assert_eq!(parse(&bytes).unwrap(), field, "{w}x{h}");
            for cut in 0..bytes.len() {
                assert!(parse(&bytes[..cut]).is_err());
            }
            // A version 17 field cannot hold them.
            assert!(field.symbols(grid, None, FieldLayout::Modes).is_err());
        }
    }

    #[test]
    fn a_field_with_a_side_per_unit_parses_back_exactly_and_only_as_one() {
        let grid = MotionGrid::new(72, 40);
        let guide: Vec<(i32, i32)> = (0..grid.cells() as i32).map(|i| (i % 3, 1)).collect();
        let mut field = field(grid, 7);
        // Each unit's side, in all its cells: a whole block's from its top-left cell.
        let (bcols, _) = grid.blocks();
        let sides = (0..grid.cells())
            .map(|i| {
                let (c, r) = (i % grid.cols, i / grid.cols);
                let unit = match field.split[(r / 2) * bcols + c / 2] {
                    true => i,
                    false => (r - r % 2) * grid.cols + c - c % 2,
                };
                Side::ALL[[0, 0, 1, 0, 2, 0, 0][unit % 7]]
            })
            .collect();
        field.sides = Some(sides);
        let kept = [Some(200), None, Some(3)];
        for (layout, groups) in [
            (FieldLayout::Split, GROUPS_WITH_SIDES),
            (FieldLayout::Classes, GROUPS_WITH_CLASSES),
        ] {
            let mut bytes = Vec::new();
            let tables = field
                .code_keeping(
                    grid,
                    Some(&guide),
                    (layout, StreamEnd::Sealed),
                    &kept,
                    &mut bytes,
                )
                .unwrap();
            assert_eq!(tables.len(), groups);
            let parse = |input: &[u8], sides: bool| {
                let guided = Guided {
                    guide: Some(&guide),
                    sides,
                };
                let end = StreamEnd::Sealed;
                MotionField::parse_keeping(&mut &input[..], grid, end, layout, guided, &kept)
            };
            assert_eq!(parse(&bytes, true).unwrap(), (field.clone(), tables));
            assert_ne!(
                parse(&bytes, false).ok().map(|(f, _)| f),
                Some(field.clone())
            );
            for cut in 0..bytes.len() {
                assert!(parse(&bytes[..cut], true).is_err(), "cut at {cut}");
            }
            if layout == FieldLayout::Split {
                // The mask's second byte holds the side groups; nothing beyond them.
                let mut forged = bytes.clone();
                forged[2] |= 0x80;
                assert!(parse(&forged, true).is_err());
            }
        }
    }

    #[test]
    fn a_guided_field_parses_back_under_its_guide_and_costs_little_where_it_follows_it() {
        let grid = MotionGrid::new(72, 40);
        // Every cell a different vector: dear to predict from neighbours, free from a guide
        // that has them.
        let guide: Vec<(i32, i32)> = (0..grid.cells() as i32)
            .map(|i| (i % 7 - 3, i % 5))
            .collect();
        // (Changes at quarter-pixel precision of any size: the layout before large ones
        // lost theirs.)
        let mut field = field(grid, 6);
        let (bcols, brows) = grid.blocks();
        field.split = (0..bcols * brows)
            .map(|b| grid.block_cells(b % bcols, b / bcols).1 > 1)
            .collect();
        field.vectors.clone_from(&guide);
        field.vectors[5] = (40, -9);
        let coded = |guide: Guide| {
            let mut bytes = Vec::new();
            let layout = FieldLayout::Classes;
            field
                .code_keeping(grid, guide, (layout, StreamEnd::Sealed), &[], &mut bytes)
                .unwrap();
            bytes
        };
        let (guided, plain) = (coded(Some(&guide)), coded(None));
        assert!(
            2 * guided.len() < plain.len(),
            "{} vs {} bytes",
            guided.len(),
            plain.len()
        );
        let parse = |guide: Guide| {
            let layout = FieldLayout::Classes;
            MotionField::parse_keeping(
                &mut &guided[..],
                grid,
                StreamEnd::Sealed,
                layout,
                Guided {
                    guide,
                    sides: false,
                },
                &[],
            )
            .map(|(f, _)| f)
        };
        assert_eq!(parse(Some(&guide)).unwrap(), field);
        assert_ne!(parse(None).ok(), Some(field));
    }

    #[test]
    fn a_still_field_costs_a_few_bytes_and_forged_ones_are_errors() {
        let grid = MotionGrid::new(640, 272);
        let blocks = grid.blocks().0 * grid.blocks().1;
        let still = MotionField {
            vectors: vec![(3, -2); grid.cells()],
            split: vec![false; blocks],
            sides: None,
            modes: None,
        };
        let mut bytes = Vec::new();
        still.code(grid, &mut bytes).unwrap();
        assert!(bytes.len() < 24, "{} bytes", bytes.len());
        // A vector beyond the largest a stream may carry.
        let mut far = still.clone();
        far.vectors.fill((MAX_COMPONENT + 1, 0));
        for layout in [FieldLayout::Split, FieldLayout::Classes] {
            let bytes = coded(&far, grid, layout);
            let end = StreamEnd::Sealed;
            assert!(MotionField::parse(&mut &bytes[..], grid, end, layout).is_err());
            // The first group past the layout's in the mask, and a flag group without its table.
            let bytes = coded(&still, grid, layout);
            let unknown = still.groups(layout);
            for forge in [1 << unknown, 1 << SPLIT_GROUPS] {
                let forged = with_mask(&bytes, layout, forge);
                assert!(MotionField::parse(&mut &forged[..], grid, end, layout).is_err());
            }
        }
    }

    /// A field's `bytes` in `layout` with the bits `flip` of its group mask flipped.
    fn with_mask(bytes: &[u8], layout: FieldLayout, flip: u64) -> Vec<u8> {
        let mut rest = bytes;
        varint::read_u64(&mut rest).unwrap();
        let mut body = Vec::new();
        if layout == FieldLayout::Classes {
            let mask = varint::read_u64(&mut rest).unwrap();
            varint::write_u64(&mut body, mask ^ flip);
        } else {
            let (&mask, after) = rest.split_first().unwrap();
            rest = after;
            body.push(mask ^ u8::try_from(flip).unwrap());
        }
        body.extend_from_slice(rest);
        let mut out = Vec::new();
        varint::write_u64(&mut out, body.len() as u64);
        out.extend(body);
        out
    }

    #[test]
    fn a_block_field_of_older_files_gives_each_cell_its_blocks_vector() {
        // Written as versions 3 to 7 wrote it: the table index, then every change.
        let grid = MotionGrid::new(40, 20);
        let (bcols, brows) = grid.blocks();
        let blocks: Vec<(i32, i32)> = vec![(4, 0), (5, -1), (-8, 2), (4, 0), (4, 1), (0, 0)];
        let mut decoded = vec![false; blocks.len()];
        let mut changes = Vec::new();
        for b in 0..bcols * brows {
            let p = predicted(&blocks, &decoded, bcols, (b % bcols, b / bcols), 1);
            changes.extend([blocks[b].0 - p.0, blocks[b].1 - p.1]);
            decoded[b] = true;
        }
        let bank = ScaleBank::get();
        let index = bank.cheapest_of_all(&changes);
        let mut items = Vec::new();
        for &v in &changes {
            bank.push_symbols(index, v, &mut items);
        }
        let mut body = vec![index];
        entropy::write_words(&mut body, &entropy::encode(items.into_iter()).unwrap());
        let mut bytes = Vec::new();
        varint::write_u64(&mut bytes, body.len() as u64);
        bytes.extend(body);
        let layout = FieldLayout::Blocks;
        let field = MotionField::parse(&mut &bytes[..], grid, StreamEnd::Sealed, layout).unwrap();
        let cell = |c: usize, r: usize| field.vectors[r * grid.cols + c];
        assert_eq!(
            (cell(0, 0), cell(1, 1), cell(2, 0), cell(3, 1)),
            ((4, 0), (4, 0), (5, -1), (5, -1))
        );
        assert_eq!(
            (cell(4, 0), cell(4, 2), cell(0, 2), cell(2, 2)),
            ((-8, 2), (0, 0), (4, 0), (4, 1))
        );
    }
}
