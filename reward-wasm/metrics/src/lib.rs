//! Pure text metrics: the single source of truth for the built-in reward modules.
//!
//! Every function here is a deterministic, allocation-light pure function of its
//! string arguments: no randomness (hashing uses `rustc-hash`, never
//! `RandomState`), no clocks, no threads, no I/O. The same code runs natively
//! (tests, benchmarks, the evaluator) and inside the `wasm32-unknown-unknown`
//! reward modules, so a score computed in either place is bit-for-bit the same.
//!
//! An independent Python implementation of the same definitions lives in
//! `reward-wasm/reference/metrics_reference.py`; `tests/reference.rs` compares
//! the two on the MaRio held-out test responses.
//!
//! # Where things live
//!
//! | module           | functions                                                    |
//! |------------------|--------------------------------------------------------------|
//! | [`accuracy`]     | [`extract_answer`], [`reference_label`], [`accuracy()`]      |
//! | [`diversity`]    | [`rationale`], [`diversity()`]                               |
//! | [`length`]       | [`LengthStats`], [`length()`], [`sentence_count`]            |
//! | [`readability`]  | [`syllables`], [`flesch_kincaid_grade`], [`sentence_grades`] |
//! | [`sentences`]    | [`split`] (sentence byte ranges, for span rewards)           |
//! | [`grounding`]    | [`grounding()`], [`words`], [`STOP_WORDS`]                   |
//! | [`rouge`]        | [`RougeScores`], [`tokenize`], [`rouge()`]                   |
//! | [`qa`]           | [`normalize_answer`], [`exact_match`], [`token_f1`]          |
//!
//! [`extract_answer`]: accuracy::extract_answer
//! [`reference_label`]: accuracy::reference_label
//! [`accuracy()`]: accuracy::accuracy
//! [`rationale`]: diversity::rationale
//! [`diversity()`]: diversity::diversity
//! [`LengthStats`]: length::LengthStats
//! [`length()`]: length::length
//! [`sentence_count`]: length::sentence_count
//! [`syllables`]: readability::syllables
//! [`flesch_kincaid_grade`]: readability::flesch_kincaid_grade
//! [`sentence_grades`]: readability::sentence_grades
//! [`split`]: sentences::split
//! [`grounding()`]: grounding::grounding
//! [`words`]: grounding::words
//! [`STOP_WORDS`]: grounding::STOP_WORDS
//! [`RougeScores`]: rouge::RougeScores
//! [`tokenize`]: rouge::tokenize
//! [`rouge()`]: rouge::rouge
//! [`normalize_answer`]: qa::normalize_answer
//! [`exact_match`]: qa::exact_match
//! [`token_f1`]: qa::token_f1
//!
//! # Shared vocabulary
//!
//! These terms mean exactly the following everywhere in this crate.
//!
//! * **Whitespace** is the Unicode `White_Space` property ([`char::is_whitespace`]):
//!   U+0009–U+000D, U+0020, U+0085, U+00A0, U+1680, U+2000–U+200A, U+2028,
//!   U+2029, U+202F, U+205F, U+3000. (Unlike Python's `str.split()`, the
//!   information separators U+001C–U+001F are *not* whitespace.)
//! * **Trimmed** means leading and trailing whitespace removed ([`str::trim`]).
//! * **Whitespace tokens** are the maximal non-empty runs of non-whitespace
//!   characters ([`str::split_whitespace`]).
//! * **Alphabetic** is the Unicode `Alphabetic` property ([`char::is_alphabetic`]);
//!   **alphanumeric** is alphabetic or a character of general category
//!   `Nd`, `Nl` or `No` ([`char::is_alphanumeric`]).
//! * **Lowercased** is the full Unicode lowercase mapping, including the
//!   final-sigma rule ([`str::to_lowercase`], the same as Python's `str.lower`).
//! * **Characters** are Unicode scalar values (Rust `char`s; Python `len(str)`).
//! * **The answer phrase** is the case-sensitive string `"So the answer is "`,
//!   *with* its trailing space; [`diversity::rationale`] alone uses the
//!   phrase without the trailing space, `"So the answer is"`.
//!
//! # Definitions
//!
//! ## Accuracy ([`accuracy`])
//!
//! * `extract_answer(text)`: `None` when `text` does not contain the answer
//!   phrase `"So the answer is "`. Otherwise take the text after its first
//!   occurrence, cut it before the next occurrence of the phrase (if any),
//!   trim whitespace, then strip every `'.'` at both ends, then lowercase.
//!   Note that `"So the answer is: (F)"` does **not** contain the phrase (a
//!   colon, not a space, follows `is`), so it yields `None`; and
//!   `"So the answer is : (F)"` yields `": (f)"` (the colon stays in the label).
//! * `reference_label(reference)`: `extract_answer(reference)` when the
//!   reference contains the phrase, else the whole reference trimmed,
//!   `'.'`-stripped at both ends and lowercased (in that order).
//! * `accuracy(response, reference)`: `1.0` when `extract_answer(response)` is
//!   `Some(label)` and `label == reference_label(reference)`, else `0.0`.
//!
//! ## Diversity ([`diversity`])
//!
//! * `rationale(response)`: the text before the first `"So the answer is"` (no
//!   trailing space required), trimmed; the whole text trimmed when the phrase
//!   is absent.
//! * `diversity(response)`: the MaRio diversity of the rationale. Split it into
//!   whitespace tokens `t_1..t_k`. For `n = 2, 3, 4` let `total_n = k - n + 1`
//!   (the number of n-gram positions) and `unique_n` the number of distinct
//!   n-grams; `rep_n = 1 - unique_n / total_n`, and `rep_n = 0` when
//!   `total_n <= 0` (so when some `n` has no n-gram, it and every larger `n`
//!   count as repetition 0). `diversity = (1 - rep_2)(1 - rep_3)(1 - rep_4)`,
//!   always in `[0, 1]`; a rationale with fewer than two tokens scores `1.0`.
//!
//! ## Length ([`length`])
//!
//! * `words`: number of whitespace tokens.
//! * `characters`: number of characters of the whole text (nothing trimmed).
//! * `sentences` (`sentence_count`): a sentence ends at a *maximal* run of the
//!   terminator characters `.`, `!`, `?` that is followed by whitespace or by
//!   the end of the text. The text is cut right after each such run into
//!   segments; the count is the number of segments that contain at least one
//!   alphanumeric character. Examples: `""` → 0, `"Hi"` → 1, `"e.g.x"` → 1,
//!   `"Yes. No!  Maybe?"` → 3, `"Wait... what?!"` → 2, `"... !!!"` → 0.
//!
//! ## Readability ([`readability`])
//!
//! * `syllables(word)`: keep only the ASCII letters of `word`, lowercased; if
//!   none remain the word has 1 syllable. Otherwise count the maximal groups of
//!   consecutive vowels from `{a, e, i, o, u, y}`; if the letters end in `"e"`
//!   but not in `"le"` and the count is greater than 1, subtract 1 (silent e).
//!   The result is at least 1.
//! * `flesch_kincaid_grade(text)`: the words are the whitespace tokens that
//!   contain at least one alphabetic character; `None` when there is none.
//!   With `W` words, `S = max(1, sentence_count(text))` sentences and `Y` the
//!   sum of `syllables` over the words:
//!   `0.39 * (W / S) + 11.8 * (Y / W) - 15.59`.
//!
//! ## Sentences ([`sentences`])
//!
//! * `split(text)`: byte ranges of sentences, for span rewards (a finer rule than
//!   `sentence_count`'s, which stays as it is for `length` and `readability`).
//!   A sentence ends after a maximal run of `.`, `!`, `?` plus any closing
//!   quotes or brackets, when whitespace or the end of the text follows, except
//!   a single `.` after an abbreviation (`Mr.`, `Dr.`, `e.g.`, an initial `J.`;
//!   the list is `sentences::ABBREVIATIONS`); a line feed always ends one; text
//!   after the last terminator is a last sentence; pieces with no alphanumeric
//!   character are dropped. Ranges exclude surrounding whitespace. (ALaRM uses
//!   spaCy's segmenter; this is a cheaper, model-free rule.)
//! * `sentence_grades(text)`: per sentence of `split`, Flesch–Kincaid with one
//!   sentence: `0.39 * W + 11.8 * (Y / W) - 15.59`; sentences without a word
//!   are left out.
//!
//! ## Grounding ([`grounding`])
//!
//! * `words(text)`: maximal runs of alphanumeric characters, each lowercased.
//! * `grounding(response, source)`: per sentence of `split(response)` with at
//!   least one content word (a word not in `STOP_WORDS`), the share of its
//!   content words, counted with repetition, that are among `words(source)`.
//!
//! ## ROUGE ([`rouge`])
//!
//! * `tokenize(text)`: the default tokenizer of Google's `rouge-score` without
//!   stemming: lowercase the whole text, then every maximal run of characters
//!   outside `[a-z0-9]` is a separator; empty tokens are dropped. Non-ASCII
//!   letters and digits (`é`, `ß`, `日`, `٣`) are therefore separators:
//!   `"Café Ωmega"` → `["caf", "mega"]`.
//! * `rouge(candidate, reference)`: F1 of ROUGE-1 and ROUGE-2 (clipped n-gram
//!   overlap: `overlap = Σ_g min(count_cand(g), count_ref(g))`,
//!   `P = overlap / #cand n-grams`, `R = overlap / #ref n-grams`) and ROUGE-L
//!   (`P = LCS / #cand tokens`, `R = LCS / #ref tokens`, LCS = longest common
//!   token subsequence). `F = 2PR / (P + R)`; `0.0` when the overlap is 0 or
//!   either side has no token / n-gram. F is symmetric in its arguments.
//!
//! ## Question answering ([`qa`])
//!
//! * `normalize_answer(s)`: SQuAD v1.1 normalization, in this order:
//!   lowercase; remove every ASCII punctuation character (Python's
//!   `string.punctuation`, [`char::is_ascii_punctuation`]: ``!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~``);
//!   replace every *word* equal to `a`, `an` or `the` by a space, where a word
//!   is a maximal run of alphanumeric characters (this is SQuAD's
//!   `\b(a|an|the)\b`); finally join the whitespace tokens with single spaces.
//! * `exact_match(prediction, gold)`: `1.0` when the normalized strings are
//!   equal, else `0.0` (two answers that normalize to `""` match).
//! * `token_f1(prediction, gold)`: with the whitespace tokens of the normalized
//!   strings, `1.0` if both have no token, `0.0` if exactly one has none;
//!   otherwise `common = Σ_t min(count_pred(t), count_gold(t))`, `0.0` when
//!   `common == 0`, else `P = common / #pred`, `R = common / #gold`,
//!   `F1 = 2PR / (P + R)`.

pub mod accuracy;
pub mod diversity;
pub mod grounding;
pub mod length;
pub mod qa;
pub mod readability;
pub mod rouge;
pub mod sentences;

/// `2PR / (P + R)`, or `0.0` when `P + R` is not positive.
///
/// Evaluated as `((2 * p) * r) / (p + r)`, the same order as `rouge-score`
/// and the SQuAD script, so the floating-point result is identical.
fn f_measure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}
