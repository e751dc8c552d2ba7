//! Entropy coding shared by every coder: integer probability tables and an ANS coder
//! (`constriction`).
//!
//! Tables are 12-bit fixed point and built with integer arithmetic only, so an encoder and a
//! decoder on any machine agree on them bit for bit. Decoding uses constriction's lookup-table
//! models, the fast path.

use constriction::stream::model::{
    SmallContiguousCategoricalEntropyModel, SmallContiguousLookupDecoderModel,
};
use constriction::stream::stack::DefaultAnsCoder;
use constriction::stream::{Code, Decode, Encode};

use crate::varint;

mod bank;

pub use bank::{
    index_for_log_scale, index_for_mean_abs, scale_of, ScaleBank, SCALES, SCALE_RATIO,
    SMALLEST_SCALE,
};

/// Bits of probability precision: every table sums to `1 << PRECISION`.
pub const PRECISION: usize = 12;
/// Largest alphabet a table may have (each symbol needs a nonzero probability).
pub const MAX_SYMBOLS: usize = 1 << PRECISION;

/// Why a table or a coded stream is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntropyError {
    #[error("a table needs 1..={MAX_SYMBOLS} symbols, got {0}")]
    AlphabetSize(usize),
    #[error("table probabilities are invalid (zero, or not summing to {MAX_SYMBOLS})")]
    BadProbabilities,
    #[error("symbol {symbol} is outside the table's range {min}..={max}")]
    SymbolOutOfRange { symbol: i32, min: i32, max: i32 },
    #[error(transparent)]
    TableData(#[from] varint::VarintError),
    #[error("table minimum symbol {0} is out of range")]
    BadMinSymbol(i64),
    #[error("coded data is not a whole number of 32-bit words")]
    RaggedWords,
    #[error("coded data is shorter than a stream's final state")]
    NoFinalState,
    #[error("coded data ends with a zero word, which an encoder never writes")]
    TrailingZeroWord,
    #[error("coded data holds more than the symbols it should")]
    LeftoverData,
    #[error("coded data ends before its symbols do (truncated or forged payload)")]
    DataRanOut,
    #[error("an escaped value is too large")]
    EscapeOverflow,
    #[error("{len} bytes cannot hold {count} table indices")]
    IndicesMissing { len: usize, count: usize },
    #[error("table index {0} is not below {SCALES}")]
    BadTableIndex(u8),
}

/// Splits a payload that starts with `count` scale-bank indices (one byte each) into those
/// indices and the rest, checking every index against the bank. The PCA and learned coders'
/// payloads start this way.
pub fn split_table_indices(payload: &[u8], count: usize) -> Result<(&[u8], &[u8]), EntropyError> {
    if payload.len() < count {
        return Err(EntropyError::IndicesMissing {
            len: payload.len(),
            count,
        });
    }
    let (indices, rest) = payload.split_at(count);
    indices
        .iter()
        .try_for_each(|&i| check_table_index(i).map(drop))?;
    Ok((indices, rest))
}

/// Refuses a scale-bank index byte the bank does not have.
pub fn check_table_index(index: u8) -> Result<u8, EntropyError> {
    if usize::from(index) < SCALES {
        Ok(index)
    } else {
        Err(EntropyError::BadTableIndex(index))
    }
}

/// A categorical distribution over the integers `min_symbol ..= min_symbol + len - 1`, as
/// 12-bit fixed-point probabilities (each at least 1, summing to 4096).
#[derive(Clone)]
pub struct CategoricalTable {
    min_symbol: i32,
    probabilities: Vec<u16>,
    encoder: SmallContiguousCategoricalEntropyModel,
    decoder: SmallContiguousLookupDecoderModel,
}

impl std::fmt::Debug for CategoricalTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CategoricalTable")
            .field("min_symbol", &self.min_symbol)
            .field("probabilities", &self.probabilities)
            .finish()
    }
}

impl PartialEq for CategoricalTable {
    fn eq(&self, other: &Self) -> bool {
        self.min_symbol == other.min_symbol && self.probabilities == other.probabilities
    }
}

impl Eq for CategoricalTable {}

impl CategoricalTable {
    /// Builds a table from fixed-point probabilities, checking them.
    pub fn new(min_symbol: i32, probabilities: Vec<u16>) -> Result<Self, EntropyError> {
        if probabilities.is_empty() || probabilities.len() > MAX_SYMBOLS {
            return Err(EntropyError::AlphabetSize(probabilities.len()));
        }
        let sum: u32 = probabilities.iter().map(|&p| u32::from(p)).sum();
        if sum != MAX_SYMBOLS as u32 || probabilities.contains(&0) {
            return Err(EntropyError::BadProbabilities);
        }
        if i64::from(min_symbol) + probabilities.len() as i64 > i64::from(i32::MAX) {
            return Err(EntropyError::BadMinSymbol(min_symbol.into()));
        }
        let encoder =
            SmallContiguousCategoricalEntropyModel::from_nonzero_fixed_point_probabilities(
                &probabilities,
                false,
            )
            .map_err(|()| EntropyError::BadProbabilities)?;
        let decoder = SmallContiguousLookupDecoderModel::from_nonzero_fixed_point_probabilities(
            &probabilities,
            false,
        )
        .map_err(|()| EntropyError::BadProbabilities)?;
        Ok(Self {
            min_symbol,
            probabilities,
            encoder,
            decoder,
        })
    }

    /// Quantizes counts over `min_symbol ..` to a table, in integer arithmetic: every symbol
    /// keeps probability ≥ 1, the rest is shared in proportion to the counts, and rounding
    /// leftovers go to the largest fractional parts (ties to the smaller symbol).
    pub fn from_counts(min_symbol: i32, counts: &[u64]) -> Result<Self, EntropyError> {
        let n = counts.len();
        if n == 0 || n > MAX_SYMBOLS {
            return Err(EntropyError::AlphabetSize(n));
        }
        let free = (MAX_SYMBOLS - n) as u128;
        let total: u128 = counts.iter().map(|&c| u128::from(c)).sum::<u128>().max(1);
        let mut probabilities = Vec::with_capacity(n);
        let mut remainders = Vec::with_capacity(n);
        for (i, &c) in counts.iter().enumerate() {
            let share = u128::from(c) * free;
            probabilities.push(1 + (share / total) as u16);
            remainders.push((share % total, i));
        }
        let assigned: usize = probabilities.iter().map(|&p| usize::from(p)).sum();
        remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(_, i) in remainders.iter().take(MAX_SYMBOLS - assigned) {
            probabilities[i] += 1;
        }
        Self::new(min_symbol, probabilities)
    }

    /// Fits a table to the symbols it will code (covering exactly their range).
    pub fn fit(symbols: &[i32]) -> Result<Self, EntropyError> {
        let (Some(&min), Some(&max)) = (symbols.iter().min(), symbols.iter().max()) else {
            return Self::new(0, vec![MAX_SYMBOLS as u16]);
        };
        let span = (i64::from(max) - i64::from(min) + 1) as usize;
        if span > MAX_SYMBOLS {
            return Err(EntropyError::AlphabetSize(span));
        }
        let mut counts = vec![0u64; span];
        for &s in symbols {
            counts[(s - min) as usize] += 1;
        }
        Self::from_counts(min, &counts)
    }

    pub fn min_symbol(&self) -> i32 {
        self.min_symbol
    }

    pub fn max_symbol(&self) -> i32 {
        self.min_symbol + self.probabilities.len() as i32 - 1
    }

    /// Ideal cost of a symbol in bits under this table.
    pub fn bits(&self, symbol: i32) -> f64 {
        let p = self.probabilities[(symbol - self.min_symbol) as usize];
        PRECISION as f64 - f64::from(p).log2()
    }

    /// Appends the table: zigzag varint minimum, varint count, varint probabilities.
    pub fn write(&self, out: &mut Vec<u8>) {
        varint::write_i64(out, self.min_symbol.into());
        varint::write_u64(out, self.probabilities.len() as u64);
        for &p in &self.probabilities {
            varint::write_u64(out, p.into());
        }
    }

    /// Reads a table written by [`write`](Self::write), advancing `input`.
    pub fn read(input: &mut &[u8]) -> Result<Self, EntropyError> {
        let min = varint::read_i64(input)?;
        let min_symbol = i32::try_from(min).map_err(|_| EntropyError::BadMinSymbol(min))?;
        let n = varint::read_u64(input)?;
        if n == 0 || n > MAX_SYMBOLS as u64 {
            return Err(EntropyError::AlphabetSize(n.min(usize::MAX as u64) as usize));
        }
        let mut probabilities = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let p = varint::read_u64(input)?;
            probabilities.push(u16::try_from(p).map_err(|_| EntropyError::BadProbabilities)?);
        }
        Self::new(min_symbol, probabilities)
    }

    fn index_of(&self, symbol: i32) -> Result<usize, EntropyError> {
        let i = i64::from(symbol) - i64::from(self.min_symbol);
        if (0..self.probabilities.len() as i64).contains(&i) {
            Ok(i as usize)
        } else {
            Err(EntropyError::SymbolOutOfRange {
                symbol,
                min: self.min_symbol,
                max: self.max_symbol(),
            })
        }
    }
}

/// The ANS state an encoder starts from (`.aez` version 4 on), and so the state a decoder must
/// end at. Every state of an honest stream is at least this (constriction refills the state
/// from the data whenever it falls below), so a decoder whose state falls below it has read
/// past the end of its data: the stream was truncated or forged. (Starting from the empty
/// state, as versions 2 and 3 did, an honest stream's last symbols are decoded from a state
/// below 2^32 too, and a stream that ran out can go on yielding symbols from a small state
/// for ever.)
const SEAL: u64 = 1 << 32;

/// How a stream's end is checked, by the version of the file it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// Version 4 on: the encoder started at `SEAL`; a decoder that does not end exactly
    /// there, or whose state falls below it on the way, read data that is not there.
    Sealed,
    /// Versions 2 and 3: the encoder started at the empty state. Running out of data is
    /// recognized only after `LEGACY_TAIL_DECODES` symbols decoded below `SEAL`.
    Legacy,
    /// Version 16 on: sealed, and the final state written in as few bytes as hold it (5 to 8,
    /// since it is at least `SEAL`) instead of two whole words; so a stream of `n` bytes ends
    /// with `5 + (n − 5) % 4` bytes of state, its last one not 0.
    Tight,
}

impl StreamEnd {
    /// What this build's encoders write.
    pub const WRITTEN: Self = Self::Tight;
}

/// Symbols a legacy stream may decode with its state below [`SEAL`] before it counts as run
/// out: an honest one does so only for the ≤ 32 bits of its last symbols, at least 0.00035
/// bits each (no 12-bit table gives a symbol more than 4095/4096), so at most about 91,000.
const LEGACY_TAIL_DECODES: u32 = 100_000;

/// Encodes `(table, symbol)` pairs into ANS words, to be decoded in the same order, as a
/// [`StreamEnd::Sealed`] stream.
pub fn encode<'t>(
    items: impl DoubleEndedIterator<Item = (&'t CategoricalTable, i32)>,
) -> Result<Vec<u32>, EntropyError> {
    let mut coder = DefaultAnsCoder::from_raw_parts(Vec::new(), SEAL);
    // ANS is a stack: encoding back to front lets the decoder read front to back.
    for (table, symbol) in items.rev() {
        let index = table.index_of(symbol)?;
        coder
            .encode_symbol(index, table.encoder.as_view())
            .expect("symbol index inside a nonzero-probability table");
    }
    Ok(coder
        .into_compressed()
        .unwrap_or_else(|never| match never {}))
}

/// The ideal information content, in bits, of `(table, symbol)` pairs: what a perfect entropy
/// coder would spend on them. An ANS stream from [`encode`] is measured against it.
pub fn information_content<'t>(
    items: impl IntoIterator<Item = (&'t CategoricalTable, i32)>,
) -> f64 {
    items.into_iter().map(|(t, s)| t.bits(s)).sum()
}

/// Encodes `symbols`, all with one table.
pub fn encode_iid(table: &CategoricalTable, symbols: &[i32]) -> Result<Vec<u32>, EntropyError> {
    encode(symbols.iter().map(|&s| (table, s)))
}

/// Appends the ANS words [`encode`] returned as a stream that ends as `end` says: the words
/// as little-endian bytes, or for [`StreamEnd::Tight`] the last two (the final state, low word
/// first) in their shortest form.
pub fn write_stream(out: &mut Vec<u8>, words: &[u32], end: StreamEnd) {
    match (end, words) {
        (StreamEnd::Tight, [bulk @ .., low, high]) => {
            write_words(out, bulk);
            let state = u64::from(*low) | (u64::from(*high) << 32);
            let bytes = (u64::BITS - state.leading_zeros()).div_ceil(8) as usize;
            out.extend_from_slice(&state.to_le_bytes()[..bytes]);
        }
        _ => write_words(out, words),
    }
}

/// Appends ANS words as little-endian bytes.
pub fn write_words(out: &mut Vec<u8>, words: &[u32]) {
    out.reserve(4 * words.len());
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// Decodes symbols, one at a time, from words an [`encode`] call wrote.
///
/// Decoding never fails symbol by symbol: a stream that runs out of data goes on yielding
/// symbols. [`check`](Self::check) says whether that has happened (call it in loops, so that
/// a forged payload cannot make the decoder work through a huge frame), and
/// [`finish`](Self::finish) whether the stream ended exactly where it should.
pub struct SymbolDecoder {
    coder: DefaultAnsCoder,
    end: StreamEnd,
    /// Symbols decoded that left the state below [`SEAL`].
    tail_decodes: u32,
}

impl SymbolDecoder {
    /// Starts decoding from the little-endian bytes of the ANS words.
    pub fn new(bytes: &[u8], end: StreamEnd) -> Result<Self, EntropyError> {
        let (bulk, state) = match end {
            StreamEnd::Tight => {
                let tail = bytes
                    .len()
                    .checked_sub(5)
                    .map(|n| 5 + n % 4)
                    .ok_or(EntropyError::NoFinalState)?;
                let (bulk, state) = bytes.split_at(bytes.len() - tail);
                if state.last() == Some(&0) {
                    return Err(EntropyError::TrailingZeroWord);
                }
                let mut padded = [0u8; 8];
                padded[..tail].copy_from_slice(state);
                (bulk, Some(u64::from_le_bytes(padded)))
            }
            StreamEnd::Sealed | StreamEnd::Legacy => (bytes, None),
        };
        if !bulk.len().is_multiple_of(4) {
            return Err(EntropyError::RaggedWords);
        }
        let mut words: Vec<u32> = bulk
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        if let Some(state) = state {
            words.extend([state as u32, (state >> 32) as u32]);
        }
        let coder =
            DefaultAnsCoder::from_compressed(words).map_err(|_| EntropyError::TrailingZeroWord)?;
        Ok(Self {
            coder,
            end,
            tail_decodes: 0,
        })
    }

    /// The next symbol under `table`.
    #[inline]
    pub fn decode(&mut self, table: &CategoricalTable) -> i32 {
        let index = self
            .coder
            .decode_symbol(table.decoder.as_view())
            .unwrap_or_else(|e| match e {});
        // Below 2^32 only once every word has been read (constriction refills it while words
        // remain).
        if self.coder.state() < SEAL {
            self.tail_decodes = self.tail_decodes.saturating_add(1);
        }
        table.min_symbol + index as i32
    }

    /// Decodes `out.len()` symbols with one table.
    pub fn decode_iid(&mut self, table: &CategoricalTable, out: &mut [i32]) {
        for slot in out {
            *slot = self.decode(table);
        }
    }

    /// An error once the decoder has read past the end of its data.
    #[inline]
    pub fn check(&self) -> Result<(), EntropyError> {
        let limit = match self.end {
            StreamEnd::Sealed | StreamEnd::Tight => 0,
            StreamEnd::Legacy => LEGACY_TAIL_DECODES,
        };
        if self.tail_decodes > limit {
            Err(EntropyError::DataRanOut)
        } else {
            Ok(())
        }
    }

    /// Checks that the stream ended exactly with its last symbol: data left over, or data
    /// that ran out, means the stream is corrupt.
    pub fn finish(self) -> Result<(), EntropyError> {
        self.check()?;
        match self.end {
            StreamEnd::Legacy if self.coder.is_empty() => Ok(()),
            StreamEnd::Legacy => Err(EntropyError::LeftoverData),
            StreamEnd::Sealed | StreamEnd::Tight => {
                let (bulk, state) = self.coder.into_raw_parts();
                if !bulk.is_empty() {
                    Err(EntropyError::LeftoverData)
                } else if state != SEAL {
                    // Below the seal: data ran out; above it: words that belong to no symbol.
                    Err(if state < SEAL {
                        EntropyError::DataRanOut
                    } else {
                        EntropyError::LeftoverData
                    })
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_counts_is_exact_and_keeps_every_symbol() {
        let t = CategoricalTable::from_counts(-3, &[0, 1000, 5, 0, 7]).unwrap();
        assert_eq!(
            t.probabilities.iter().map(|&p| u32::from(p)).sum::<u32>(),
            4096
        );
        assert!(t.probabilities.iter().all(|&p| p >= 1));
        assert_eq!((t.min_symbol(), t.max_symbol()), (-3, 1));
    }

    #[test]
    fn round_trip_with_mixed_tables_and_size_near_ideal() {
        let symbols: Vec<i32> = (0..20_000)
            .map(|i: i32| (i * 7919) % 13 - 6 + i % 3)
            .collect();
        let table = CategoricalTable::fit(&symbols).unwrap();
        let other = CategoricalTable::fit(&[5, 6, 7, 7, 7]).unwrap();
        let items: Vec<(&CategoricalTable, i32)> = symbols
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                if i % 100 == 0 {
                    (&other, 7)
                } else {
                    (&table, s)
                }
            })
            .collect();
        let words = encode(items.iter().copied()).unwrap();
        let mut bytes = Vec::new();
        write_words(&mut bytes, &words);
        let mut dec = SymbolDecoder::new(&bytes, StreamEnd::Sealed).unwrap();
        for &(t, s) in &items {
            assert_eq!(dec.decode(t), s);
        }
        dec.finish().unwrap();
        let ideal = information_content(items.iter().copied());
        let actual = 32.0 * words.len() as f64;
        assert!(
            actual <= ideal * 1.01 + 64.0,
            "{actual} bits vs ideal {ideal}"
        );
    }

    #[test]
    fn table_serialization_round_trips_and_rejects_garbage() {
        let t = CategoricalTable::fit(&[-300, 0, 0, 0, 200]).unwrap();
        let mut buf = Vec::new();
        t.write(&mut buf);
        let mut slice = buf.as_slice();
        assert_eq!(CategoricalTable::read(&mut slice).unwrap(), t);
        assert!(slice.is_empty());
        let mut truncated = &buf[..buf.len() - 1];
        assert!(CategoricalTable::read(&mut truncated).is_err());
        // Probabilities that do not sum to 4096.
        let mut bad = Vec::new();
        varint::write_i64(&mut bad, 0);
        varint::write_u64(&mut bad, 2);
        varint::write_u64(&mut bad, 1);
        varint::write_u64(&mut bad, 1);
        assert_eq!(
            CategoricalTable::read(&mut bad.as_slice()),
            Err(EntropyError::BadProbabilities)
        );
    }

    #[test]
    fn a_stream_that_runs_out_is_an_error_early() {
        let table = CategoricalTable::fit(&[0, 0, 0, 1, 2, -1, 5]).unwrap();
        let symbols: Vec<i32> = (0..5000).map(|i| [0, 1, 0, 2, -1, 0, 5][i % 7]).collect();
        let mut bytes = Vec::new();
        write_words(&mut bytes, &encode_iid(&table, &symbols).unwrap());
        let mut whole = SymbolDecoder::new(&bytes, StreamEnd::Sealed).unwrap();
        let mut out = vec![0; symbols.len()];
        whole.decode_iid(&table, &mut out);
        assert_eq!(out, symbols);
        whole.finish().unwrap();
        // A quarter of the words: decoding stops being valid long before the last symbol.
        let short = &bytes[..bytes.len() / 16 * 4];
        let mut dec = SymbolDecoder::new(short, StreamEnd::Sealed).unwrap();
        let mut decoded = 0;
        while dec.check().is_ok() && decoded < symbols.len() {
            dec.decode(&table);
            decoded += 1;
        }
        assert!(decoded < symbols.len() / 2, "ran on for {decoded} symbols");
        assert_eq!(dec.finish(), Err(EntropyError::DataRanOut));
        // A stream with no words at all, asked for symbols.
        let mut empty = SymbolDecoder::new(&[], StreamEnd::Sealed).unwrap();
        empty.decode(&table);
        assert_eq!(empty.check(), Err(EntropyError::DataRanOut));
        // A sealed stream with a word too many.
        let mut longer = vec![7, 0, 0, 0];
        longer.extend_from_slice(&bytes);
        let mut dec = SymbolDecoder::new(&longer, StreamEnd::Sealed).unwrap();
        dec.decode_iid(&table, &mut out);
        assert!(dec.finish().is_err());
    }

    #[test]
    fn a_tight_stream_writes_its_final_state_in_its_shortest_form_and_reads_back() {
        let table = CategoricalTable::fit(&[0, 0, 0, 1, 2, -1, 5]).unwrap();
        for count in [0usize, 1, 2, 5, 13, 40, 333, 5000] {
            let symbols: Vec<i32> = (0..count).map(|i| [0, 1, 0, 2, -1, 0, 5][i % 7]).collect();
            let words = encode_iid(&table, &symbols).unwrap();
            let (mut sealed, mut tight) = (Vec::new(), Vec::new());
            write_stream(&mut sealed, &words, StreamEnd::Sealed);
            write_stream(&mut tight, &words, StreamEnd::Tight);
            // The same words but the state's bytes that are 0.
            assert_eq!(sealed.len(), 4 * words.len());
            assert!(tight.len() + 3 >= sealed.len() && tight.len() <= sealed.len());
            assert_eq!(tight, sealed[..tight.len()]);
            assert!(sealed[tight.len()..].iter().all(|&b| b == 0));
            let mut dec = SymbolDecoder::new(&tight, StreamEnd::Tight).unwrap();
            let mut out = vec![0; count];
            dec.decode_iid(&table, &mut out);
            assert_eq!(out, symbols);
            dec.finish().unwrap();
            // Cut, lengthened or ending in a 0 byte: an error, never a panic.
            for cut in 0..tight.len() {
                if let Ok(mut dec) = SymbolDecoder::new(&tight[..cut], StreamEnd::Tight) {
                    dec.decode_iid(&table, &mut out);
                    assert!(dec.finish().is_err(), "{count} symbols cut at {cut}");
                }
            }
            for extra in [vec![1u8], vec![0], vec![7, 7, 7, 7]] {
                let longer = [tight.clone(), extra].concat();
                if let Ok(mut dec) = SymbolDecoder::new(&longer, StreamEnd::Tight) {
                    dec.decode_iid(&table, &mut out);
                    assert!(out != symbols || dec.finish().is_err(), "{count} symbols");
                }
            }
        }
    }

    #[test]
    fn out_of_range_symbol_is_an_error() {
        let t = CategoricalTable::fit(&[0, 1]).unwrap();
        assert!(matches!(
            encode_iid(&t, &[2]),
            Err(EntropyError::SymbolOutOfRange { .. })
        ));
    }
}
