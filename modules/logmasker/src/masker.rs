//! [`Masker`]: the live rule set and the `tracing-subscriber` pieces that mask every line
//! with it: [`MaskingFields`] (field-name rules while fields are formatted), [`MaskingFormat`]
//! (the whole formatted line, under one loaded rule set) and [`MaskingWriter`] (counts
//! dropped lines; optionally masks value patterns for formatters of your own).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use arc_swap::ArcSwap;
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{Format, Full, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogMaskerConfig;
use crate::error::LogMaskerError;
use crate::rules::{Action, RuleSet};

/// A handle on one live rule set and its counters; clones share both.
///
/// Every line formatted through its pieces is masked under one rule set, loaded once for the
/// line: a reload ([`Masker::prepare`], then [`PreparedRules::commit`]) swaps the whole set, so
/// a line is masked entirely under the old rules or entirely under the new.
#[derive(Clone)]
pub struct Masker {
    shared: Arc<Shared>,
}

struct Shared {
    rules: ArcSwap<RuleSet>,
    lines_masked: AtomicU64,
    values_masked: AtomicU64,
    dropped: AtomicU64,
    /// The dropped count (own and tracked) the last health check saw.
    dropped_checked: AtomicU64,
    /// Why the last reload's rule set failed to compile, until one compiles again.
    rejected: Mutex<Option<String>>,
    rejections: AtomicU64,
    drop_sources: Mutex<Vec<DropSource>>,
}

type DropSource = Box<dyn Fn() -> u64 + Send + Sync>;

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masker")
            .field("rules", &*self.shared.rules.load())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for Masker {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts since the masker was created.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MaskerStats {
    /// Lines in which at least one value was masked.
    pub lines_masked: u64,
    /// Values masked, over every rule.
    pub values_masked: u64,
    /// Lines the writer failed to write, plus those reported by tracked writers.
    pub dropped_lines: u64,
    /// Reloads whose rule set failed to compile.
    pub rejected_reloads: u64,
    /// Rules in the live set.
    pub rules: usize,
    /// Whether the live set masks at all.
    pub enabled: bool,
    /// The size limit the live set was compiled under.
    pub compiled_size_limit: usize,
}

/// A compiled rule set waiting to be swapped in; dropping it leaves the live set as it is.
#[derive(Debug)]
#[must_use = "a prepared rule set does nothing until committed"]
pub struct PreparedRules {
    masker: Masker,
    rules: Arc<RuleSet>,
}

impl PreparedRules {
    /// Swaps the prepared set in: the next line is masked under it.
    pub fn commit(self) {
        self.masker.shared.rules.store(self.rules);
        *self
            .masker
            .shared
            .rejected
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// How many rules the prepared set holds.
    pub fn rule_count(&self) -> usize {
        self.rules.rule_count()
    }
}

impl Masker {
    /// A masker with the default rules ([`LogMaskerConfig::default`]).
    pub fn new() -> Self {
        Self::with_rules(
            RuleSet::compile(&LogMaskerConfig::default()).unwrap_or_else(|_| {
                // The defaults are constants covered by a test; should they ever fail, masking
                // everything pattern-free is still better than refusing to log.
                RuleSet::unreachable_fallback()
            }),
        )
    }

    /// A masker with `config`'s rules.
    pub fn from_config(config: &LogMaskerConfig) -> Result<Self, LogMaskerError> {
        Ok(Self::with_rules(RuleSet::compile(config)?))
    }

    /// The process-wide masker that [`install`](crate::install) puts in the global subscriber
    /// and [`LogMaskerModule::new`](crate::LogMaskerModule::new) reloads.
    pub fn global() -> &'static Masker {
        static GLOBAL: OnceLock<Masker> = OnceLock::new();
        GLOBAL.get_or_init(Masker::new)
    }

    fn with_rules(rules: RuleSet) -> Self {
        Self {
            shared: Arc::new(Shared {
                rules: ArcSwap::from_pointee(rules),
                lines_masked: AtomicU64::new(0),
                values_masked: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                dropped_checked: AtomicU64::new(0),
                rejected: Mutex::new(None),
                rejections: AtomicU64::new(0),
                drop_sources: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Compiles `config`'s rules aside (the live set keeps masking). A failure leaves health
    /// as it was (a rejected reload is not a health matter, docs/health.md) and stays in
    /// `last_rejection` until a later set is committed.
    pub fn prepare(&self, config: &LogMaskerConfig) -> Result<PreparedRules, LogMaskerError> {
        match RuleSet::compile(config) {
            Ok(rules) => Ok(PreparedRules {
                masker: self.clone(),
                rules: Arc::new(rules),
            }),
            Err(error) => {
                self.shared.rejections.fetch_add(1, Ordering::Relaxed);
                *self
                    .shared
                    .rejected
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
                Err(error)
            }
        }
    }

    /// [`prepare`](Self::prepare) and commit at once.
    pub fn apply(&self, config: &LogMaskerConfig) -> Result<(), LogMaskerError> {
        self.prepare(config).map(PreparedRules::commit)
    }

    /// `text` with every value pattern of the live set masked.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let rules = self.shared.rules.load();
        let (masked, count) = rules.mask_text(text);
        if count > 0 {
            self.count_line(&rules, count);
        }
        // A borrow of `text` or an owned string: nothing borrows the guard.
        match masked {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(owned) => Cow::Owned(owned),
        }
    }

    /// The field formatter for `fmt::layer().fmt_fields(..)`: applies field-name rules to event
    /// and span fields (value patterns are applied to the whole line by [`MaskingFormat`] or
    /// [`MaskingWriter`]).
    pub fn fields(&self) -> MaskingFields {
        MaskingFields {
            masker: self.clone(),
        }
    }

    /// Wraps a text event formatter (`fmt::format()`, `.compact()`, `.pretty()`): the line is
    /// formatted aside, value patterns masked over all of it, then written. Pair it with
    /// [`Masker::fields`] so field-name rules apply.
    pub fn format<E>(&self, inner: E) -> MaskingFormat<E> {
        MaskingFormat {
            masker: self.clone(),
            inner,
            json: false,
        }
    }

    /// Wraps the JSON event formatter (`fmt::format().json()`): the line is parsed back, keys
    /// matching field rules masked or dropped, every string value pattern-masked.
    pub fn json_format<E>(&self, inner: E) -> MaskingFormat<E> {
        MaskingFormat {
            masker: self.clone(),
            inner,
            json: true,
        }
    }

    /// Wraps a `MakeWriter` so each line is masked (value patterns) before it reaches it, and
    /// lines it fails to write are counted as dropped: for formatters other than
    /// [`MaskingFormat`]. Field-name rules need [`Masker::fields`].
    pub fn writer<M>(&self, make_writer: M) -> MaskingWriter<M> {
        MaskingWriter {
            masker: self.clone(),
            inner: make_writer,
            mask: true,
        }
    }

    /// Wraps a `MakeWriter` to count the lines it fails to write, without masking again
    /// (for use behind [`MaskingFormat`]).
    pub fn counting_writer<M>(&self, make_writer: M) -> MaskingWriter<M> {
        MaskingWriter {
            mask: false,
            ..self.writer(make_writer)
        }
    }

    /// The text `fmt` layer with every piece in place, writing to `make_writer`:
    /// `tracing_subscriber::registry().with(masker.layer(std::io::stdout))`.
    pub fn layer<S, M>(
        &self,
        make_writer: M,
    ) -> tracing_subscriber::fmt::Layer<
        S,
        MaskingFields,
        MaskingFormat<Format<Full>>,
        MaskingWriter<M>,
    >
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        M: for<'w> MakeWriter<'w> + 'static,
    {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .fmt_fields(self.fields())
            .event_format(self.format(tracing_subscriber::fmt::format().with_ansi(false)))
            .with_writer(self.counting_writer(make_writer))
    }

    /// The JSON `fmt` layer with every piece in place, writing to `make_writer`.
    pub fn json_layer<S, M>(
        &self,
        make_writer: M,
    ) -> tracing_subscriber::fmt::Layer<S, JsonFields, MaskingFormat<Format<Json>>, MaskingWriter<M>>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        M: for<'w> MakeWriter<'w> + 'static,
    {
        tracing_subscriber::fmt::layer()
            .json()
            .map_event_format(|format| self.json_format(format))
            .with_writer(self.counting_writer(make_writer))
    }

    /// Adds a counter of lines dropped elsewhere (for example a non-blocking writer's
    /// `error_counter`) to what health and stats report.
    pub fn track_dropped(&self, source: impl Fn() -> u64 + Send + Sync + 'static) {
        self.shared
            .drop_sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(source));
    }

    /// Counts since creation.
    pub fn stats(&self) -> MaskerStats {
        let rules = self.shared.rules.load();
        MaskerStats {
            lines_masked: self.shared.lines_masked.load(Ordering::Relaxed),
            values_masked: self.shared.values_masked.load(Ordering::Relaxed),
            dropped_lines: self.dropped_total(),
            rejected_reloads: self.shared.rejections.load(Ordering::Relaxed),
            rules: rules.rule_count(),
            enabled: rules.enabled(),
            compiled_size_limit: rules.compiled_size_limit(),
        }
    }

    /// Why the last reload failed to compile, while no later one has been committed.
    pub fn last_rejection(&self) -> Option<String> {
        self.shared
            .rejected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Lines dropped since the previous call (the health check's window).
    pub(crate) fn dropped_since_last_check(&self) -> u64 {
        let total = self.dropped_total();
        let before = self.shared.dropped_checked.swap(total, Ordering::Relaxed);
        total.saturating_sub(before)
    }

    fn dropped_total(&self) -> u64 {
        let tracked: u64 = self
            .shared
            .drop_sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|source| source())
            .sum();
        self.shared.dropped.load(Ordering::Relaxed) + tracked
    }

    fn id(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    fn count_line(&self, rules: &RuleSet, values: usize) {
        self.shared.lines_masked.fetch_add(1, Ordering::Relaxed);
        self.shared
            .values_masked
            .fetch_add(values as u64, Ordering::Relaxed);
        rules.series().lines_masked.increment(1);
    }

    fn count_dropped(&self) {
        self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        self.shared.rules.load().series().dropped_lines.increment(1);
    }

    /// The rule set for the line being formatted on this thread, or the live one.
    fn line_rules(&self) -> Arc<RuleSet> {
        LINE.with(|line| match &*line.borrow() {
            Some((id, rules)) if *id == self.id() => Arc::clone(rules),
            _ => self.shared.rules.load_full(),
        })
    }
}

thread_local! {
    /// The masker id and rule set of the line [`MaskingFormat`] is formatting on this thread,
    /// so the fields formatted for it use the same set as the line pass.
    static LINE: RefCell<Option<(usize, Arc<RuleSet>)>> = const { RefCell::new(None) };
    /// Values the field formatter masked for the current line.
    static FIELDS_MASKED: Cell<usize> = const { Cell::new(0) };
}

/// Sets the line's rule set for the fields formatted inside it; restores the outer one (a
/// nested line, from an event emitted while formatting) when dropped.
struct LineScope {
    previous: Option<(usize, Arc<RuleSet>)>,
    previous_count: usize,
}

impl LineScope {
    fn enter(id: usize, rules: Arc<RuleSet>) -> Self {
        Self {
            previous: LINE.with(|line| line.replace(Some((id, rules)))),
            previous_count: FIELDS_MASKED.with(|c| c.replace(0)),
        }
    }

    fn fields_masked(&self) -> usize {
        FIELDS_MASKED.with(Cell::get)
    }
}

impl Drop for LineScope {
    fn drop(&mut self) {
        LINE.with(|line| *line.borrow_mut() = self.previous.take());
        FIELDS_MASKED.with(|c| c.set(self.previous_count));
    }
}

/// Field formatting with field-name rules (see [`Masker::fields`]); the output reads like
/// `tracing-subscriber`'s default: `message key=value key="text"`.
#[derive(Clone, Debug)]
pub struct MaskingFields {
    masker: Masker,
}

impl<'writer> FormatFields<'writer> for MaskingFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let rules = self.masker.line_rules();
        let mut visitor = FieldVisitor {
            writer,
            rules: &rules,
            result: Ok(()),
            empty: true,
            masked: 0,
        };
        fields.record(&mut visitor);
        if visitor.masked > 0 {
            FIELDS_MASKED.with(|c| c.set(c.get() + visitor.masked));
        }
        visitor.result
    }
}

struct FieldVisitor<'a, 'w> {
    writer: Writer<'w>,
    rules: &'a RuleSet,
    result: fmt::Result,
    empty: bool,
    masked: usize,
}

impl FieldVisitor<'_, '_> {
    fn separator(&mut self) -> fmt::Result {
        if !std::mem::replace(&mut self.empty, false) {
            self.writer.write_char(' ')?;
        }
        Ok(())
    }

    fn write(&mut self, field: &Field, value: Rendered<'_>) {
        if self.result.is_err() {
            return;
        }
        self.result = self.write_inner(field, value);
    }

    fn write_inner(&mut self, field: &Field, value: Rendered<'_>) -> fmt::Result {
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        if name == "message" {
            self.separator()?;
            return match value {
                Rendered::Str(s) => self.writer.write_str(s),
                Rendered::Debug(d) => write!(self.writer, "{d:?}"),
            };
        }
        let Some(action) = self.rules.field_action(name) else {
            self.separator()?;
            return match value {
                Rendered::Str(s) => write!(self.writer, "{name}={s:?}"),
                Rendered::Debug(d) => write!(self.writer, "{name}={d:?}"),
            };
        };
        self.masked += 1;
        if action == Action::Drop {
            return Ok(());
        }
        self.separator()?;
        match value {
            Rendered::Str(s) => {
                let masked = action.apply(s);
                // A kept part stays quoted, as the value would have been.
                if masked.starts_with('[') {
                    write!(self.writer, "{name}={masked}")
                } else {
                    write!(self.writer, "{name}={masked:?}")
                }
            }
            Rendered::Debug(d) => {
                let text = format!("{d:?}");
                write!(self.writer, "{name}={}", action.apply(&text))
            }
        }
    }
}

enum Rendered<'a> {
    Str(&'a str),
    Debug(&'a dyn fmt::Debug),
}

impl Visit for FieldVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, Rendered::Str(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.write(field, Rendered::Debug(&format_args!("{value}")));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, Rendered::Debug(value));
    }
}

/// An event formatter that formats the line aside with `E`, masks it under one loaded rule
/// set, then writes it (see [`Masker::format`] and [`Masker::json_format`]).
#[derive(Clone, Debug)]
pub struct MaskingFormat<E> {
    masker: Masker,
    inner: E,
    json: bool,
}

thread_local! {
    /// The formatting buffer, reused line after line.
    static BUFFER: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<S, N, E> FormatEvent<S, N> for MaskingFormat<E>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    E: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let rules = self.masker.shared.rules.load_full();
        if !rules.enabled() {
            // Nothing to mask: the line goes straight to the writer.
            return self.inner.format_event(ctx, writer, event);
        }
        let scope = LineScope::enter(self.masker.id(), Arc::clone(&rules));
        // A nested line (an event from inside a Debug impl) finds the buffer taken and uses
        // its own.
        let mut buffer = BUFFER
            .with(|b| b.try_borrow_mut().map(|mut b| std::mem::take(&mut *b)))
            .unwrap_or_default();
        buffer.clear();
        let formatted = self
            .inner
            .format_event(ctx, Writer::new(&mut buffer), event);
        let fields_masked = scope.fields_masked();
        drop(scope);
        let result = formatted.and_then(|()| {
            let (line, values) = if self.json {
                mask_json(&rules, &buffer)
            } else {
                rules.mask_text(&buffer)
            };
            if values + fields_masked > 0 {
                self.masker.count_line(&rules, values + fields_masked);
            }
            writer.write_str(&line)
        });
        let _ = BUFFER.with(|b| b.try_borrow_mut().map(|mut b| *b = buffer));
        result
    }
}

/// A JSON line with field rules applied to its keys and value patterns to its strings; a line
/// that is not JSON is masked as text.
fn mask_json<'a>(rules: &RuleSet, line: &'a str) -> (Cow<'a, str>, usize) {
    let Ok(mut value) = serde_json::from_str::<Value>(line.trim_end()) else {
        return rules.mask_text(line);
    };
    let masked = mask_value(rules, &mut value);
    if masked == 0 {
        return (Cow::Borrowed(line), 0);
    }
    let mut out = value.to_string();
    if line.ends_with('\n') {
        out.push('\n');
    }
    (Cow::Owned(out), masked)
}

fn mask_value(rules: &RuleSet, value: &mut Value) -> usize {
    match value {
        Value::Object(map) => {
            let mut masked = 0;
            map.retain(|key, value| {
                let action = if key == "message" {
                    None
                } else {
                    rules.field_action(key)
                };
                match action {
                    Some(Action::Drop) => {
                        masked += 1;
                        false
                    }
                    Some(action) => {
                        let text = match &mut *value {
                            Value::String(s) => std::mem::take(s),
                            other => other.to_string(),
                        };
                        *value = Value::String(action.apply(&text));
                        masked += 1;
                        true
                    }
                    None => {
                        masked += mask_value(rules, value);
                        true
                    }
                }
            });
            masked
        }
        Value::Array(items) => items.iter_mut().map(|v| mask_value(rules, v)).sum(),
        Value::String(s) => {
            let (text, masked) = rules.mask_text(s);
            if let Cow::Owned(text) = text {
                *s = text;
            }
            masked
        }
        _ => 0,
    }
}

/// A `MakeWriter` wrapper (see [`Masker::writer`] and [`Masker::counting_writer`]).
#[derive(Debug)]
pub struct MaskingWriter<M> {
    masker: Masker,
    inner: M,
    mask: bool,
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for MaskingWriter<M> {
    type Writer = MaskingLine<'a, M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        self.line(self.inner.make_writer())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        self.line(self.inner.make_writer_for(meta))
    }
}

impl<M> MaskingWriter<M> {
    fn line<W: io::Write>(&self, inner: W) -> MaskingLine<'_, W> {
        MaskingLine {
            masker: &self.masker,
            inner,
            mask: self.mask,
            buffer: Vec::new(),
        }
    }
}

/// One line on its way through a [`MaskingWriter`]: when masking, it is buffered and masked
/// (under one loaded rule set) when flushed or dropped.
#[derive(Debug)]
pub struct MaskingLine<'a, W: io::Write> {
    masker: &'a Masker,
    inner: W,
    mask: bool,
    buffer: Vec<u8>,
}

impl<W: io::Write> MaskingLine<'_, W> {
    fn emit(&mut self, bytes: &[u8]) {
        // A failed write is counted, not returned: the formatter would only print it to stderr,
        // and health reports it instead.
        if self.inner.write_all(bytes).is_err() {
            self.masker.count_dropped();
        }
    }

    fn flush_buffer(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let buffer = std::mem::take(&mut self.buffer);
        let text = String::from_utf8_lossy(&buffer);
        let masked = self.masker.mask(&text);
        self.emit(masked.as_bytes());
    }
}

impl<W: io::Write> io::Write for MaskingLine<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.mask {
            self.buffer.extend_from_slice(buf);
        } else {
            self.emit(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buffer();
        self.inner.flush()
    }
}

impl<W: io::Write> Drop for MaskingLine<'_, W> {
    fn drop(&mut self) {
        self.flush_buffer();
    }
}
