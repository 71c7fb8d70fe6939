//! The store on disk: a write-ahead log of redo records and, now and then,
//! a checkpoint, the image of every table and outbox at the end of one log
//! file. Opening reads the checkpoint and replays the log files after it.
//!
//! ```text
//! <data_dir>/state/lock                  held while a process has the store open
//! <data_dir>/state/checkpoint            image of the state after wal-…G
//! <data_dir>/state/wal-<G+1>, wal-<G+2>  the redo records after it, in commit order
//! ```
//!
//! A log file is a header and frames: `length (u32) ‖ crc32 (u32) ‖ redo
//! record`. A commit appends one frame and, when it must be durable, syncs
//! the file, itself or on the store's sync thread ([`super::durability`]);
//! a frame not synced is made durable by the next sync, with every frame
//! before it. A crash can leave a frame cut short at the end of the
//! newest file: its checksum fails, replay stops there and the rest of the
//! file is cut off. What is replayed is always the state after some commit,
//! and never before the last synced one.
//!
//! Once the log since the last checkpoint has grown to [`LOG_PER_CHECKPOINT`]
//! times that checkpoint (and at least `min_log_bytes`, `state_checkpoint_mb`), a commit
//! starts the next log file and hands a copy of the tables (O(1): they are
//! persistent maps) to a thread that writes the new checkpoint beside the
//! old, renames it over the old, and only then deletes the log files it
//! covers. The engine does not wait for it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::entry::Entry;
use super::outboxes::{EntryBytes, Queue};
use super::redo::{Op, RedoReader, RedoWriter, put_bytes, put_u64, take_u64};
use super::tables::{Table, TableChange, Tables};
use super::{FORMAT, OLDEST_READ_FORMAT, StoreError};

const CHECKPOINT: &str = "checkpoint";
const CHECKPOINT_TMP: &str = "checkpoint.tmp";
const LOCK: &str = "lock";
const WAL_PREFIX: &str = "wal-";
const WAL_MAGIC: &[u8; 8] = b"VKWAL\0\0\0";
const CHECKPOINT_MAGIC: &[u8; 8] = b"VKSTATE\0";
const FRAME_HEADER: usize = 8;
/// The section of a checkpoint after the tables': the outboxes.
const OUTBOX_SECTION: u8 = 0xFF;

/// The log is not checkpointed before it holds this much, unless configured
/// (`state_checkpoint_mb`): more means fewer checkpoints written, and a
/// longer replay at start.
pub const DEFAULT_MIN_LOG_BYTES: u64 = 64 * 1024 * 1024;

/// How many times the last checkpoint's size the log grows to before the
/// next checkpoint. Writing one reads every entry of every table (a core
/// for one to three seconds at a million items, while the engine copies
/// every tree node it changes), so it is worth it only once replaying the
/// log would cost a few times what reading the checkpoint does; at 1 the
/// store wrote a checkpoint every 7 seconds at 5,000 changes/s, and each
/// one showed in the commit-to-visible p99 (bench/README.md, eleventh
/// round). Replay at start reads up to this many times the state's size.
pub const LOG_PER_CHECKPOINT: u64 = 4;

/// What opening found on disk.
pub struct Recovered {
    pub tables: Tables,
    pub outboxes: HashMap<String, Queue>,
    pub wal: Wal,
    /// The lock file, held (advisory lock) for as long as it is open.
    pub lock: File,
}

/// The log being appended to, and the checkpoint being written.
pub struct Wal {
    dir: PathBuf,
    /// Shared with the sync thread ([`super::durability`]), which syncs it
    /// while the next frame is computed.
    file: Arc<File>,
    generation: u64,
    /// The length of the current file up to its last whole frame.
    len: u64,
    /// Frames appended since the last sync.
    unsynced: bool,
    /// Log bytes since the last checkpoint began.
    since_checkpoint: u64,
    /// Log bytes appended since the store was opened.
    appended: u64,
    /// The size of the last checkpoint written or read.
    checkpoint_bytes: u64,
    /// No checkpoint before the log since the last one holds this much.
    min_log_bytes: u64,
    checkpointing: Option<JoinHandle<io::Result<u64>>>,
}

fn io_error(path: &Path, action: &'static str) -> impl Fn(io::Error) -> StoreError {
    let path = path.display().to_string();
    move |source| StoreError::Io {
        path: path.clone(),
        action,
        source,
    }
}

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: "state file",
        reason: format!("{}: {reason}", path.display()),
    }
}

impl Wal {
    /// Opens the store's directory (creating it), locks it, and rebuilds
    /// the state: the checkpoint, then every log file after it.
    pub fn open(dir: &Path, min_log_bytes: u64) -> Result<Recovered, StoreError> {
        fs::create_dir_all(dir).map_err(io_error(dir, "creating"))?;
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path, "opening"))?;
        lock.try_lock().map_err(|e| match e {
            fs::TryLockError::WouldBlock => StoreError::Locked {
                path: dir.display().to_string(),
            },
            fs::TryLockError::Error(source) => StoreError::Io {
                path: lock_path.display().to_string(),
                action: "locking",
                source,
            },
        })?;
        let tmp = dir.join(CHECKPOINT_TMP);
        if tmp.exists() {
            fs::remove_file(&tmp).map_err(io_error(&tmp, "removing"))?;
        }
        remove_if_older_format(dir)?;

        let Checkpoint {
            mut tables,
            mut outboxes,
            covered,
            bytes: checkpoint_bytes,
        } = read_checkpoint(&dir.join(CHECKPOINT))?.unwrap_or_default();
        let mut since_checkpoint = 0;
        let mut newest = covered;
        for (generation, path) in log_files(dir)? {
            if generation <= covered {
                // Left by a crash between a checkpoint's rename and this cleanup.
                fs::remove_file(&path).map_err(io_error(&path, "removing"))?;
                continue;
            }
            since_checkpoint += replay(&path, &mut tables, &mut outboxes)?;
            newest = generation;
        }
        let generation = newest + 1;
        let file = create_log(dir, generation)?;
        let wal = Wal {
            dir: dir.to_owned(),
            file: Arc::new(file),
            generation,
            len: WAL_MAGIC.len() as u64 + 8,
            unsynced: false,
            since_checkpoint,
            appended: 0,
            checkpoint_bytes,
            min_log_bytes,
            checkpointing: None,
        };
        Ok(Recovered {
            tables,
            outboxes,
            wal,
            lock,
        })
    }

    /// Appends one redo record as a frame, which the next [`Wal::sync`]
    /// makes durable with every frame before it. A failed append leaves
    /// the file as it was.
    pub fn append(&mut self, record: &RedoWriter) -> Result<(), StoreError> {
        let path = self.path();
        let record_len = record.len();
        let length = u32::try_from(record_len).map_err(|_| StoreError::Corrupt {
            what: "redo record",
            reason: format!("{record_len} bytes is over the 4 GiB a frame holds"),
        })?;
        let mut crc = crc32fast::Hasher::new();
        record.pieces().for_each(|piece| crc.update(piece));
        let mut header = [0u8; FRAME_HEADER];
        header[..4].copy_from_slice(&length.to_le_bytes());
        header[4..].copy_from_slice(&crc.finalize().to_le_bytes());
        let mut file: &File = &self.file;
        let written = file
            .write_all(&header)
            .and_then(|()| record.pieces().try_for_each(|piece| file.write_all(piece)));
        if let Err(error) = written {
            // Cut off what part of the frame was written, so the next one
            // follows the last whole frame; if that fails too, the log
            // cannot go on.
            if self.file.set_len(self.len).is_err() {
                return Err(StoreError::LogBroken {
                    path: path.display().to_string(),
                });
            }
            return Err(io_error(&path, "appending to")(error));
        }
        let frame = (FRAME_HEADER + record_len) as u64;
        self.len += frame;
        self.since_checkpoint += frame;
        self.appended += frame;
        self.unsynced = true;
        Ok(())
    }

    /// The bytes appended since the store was opened.
    pub fn appended_bytes(&self) -> u64 {
        self.appended
    }

    /// Makes every appended frame durable.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if self.unsynced {
            let path = self.path();
            self.file.sync_data().map_err(io_error(&path, "syncing"))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Whether frames were appended since this log last synced itself
    /// (a sync on the sync thread does not count).
    pub fn has_unsynced(&self) -> bool {
        self.unsynced
    }

    /// The current log file, for the sync thread, and its path.
    pub fn file(&self) -> (Arc<File>, PathBuf) {
        (Arc::clone(&self.file), self.path())
    }

    fn path(&self) -> PathBuf {
        log_path(&self.dir, self.generation)
    }

    /// Whether the log has grown enough to be worth a checkpoint, and none
    /// is being written.
    pub fn wants_checkpoint(&mut self) -> bool {
        if let Some(running) = &self.checkpointing {
            if !running.is_finished() {
                return false;
            }
            self.reap_checkpoint();
        }
        self.since_checkpoint
            > self
                .min_log_bytes
                .max(self.checkpoint_bytes.saturating_mul(LOG_PER_CHECKPOINT))
    }

    /// Starts a new log file and writes a checkpoint of `tables` and
    /// `outboxes` (the state at the end of the file before it) on its own
    /// thread.
    pub fn start_checkpoint(
        &mut self,
        tables: Tables,
        outboxes: HashMap<String, Queue>,
    ) -> Result<(), StoreError> {
        // The checkpoint will cover the current file: make it durable
        // first, so that an older frame is never only in a deleted file.
        self.sync()?;
        let covered = self.generation;
        self.file = Arc::new(create_log(&self.dir, covered + 1)?);
        self.generation = covered + 1;
        self.len = WAL_MAGIC.len() as u64 + 8;
        let dir = self.dir.clone();
        let log_bytes = std::mem::take(&mut self.since_checkpoint);
        let thread = std::thread::Builder::new()
            .name("state-checkpoint".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let written = write_checkpoint(&dir, tables, outboxes, covered);
                if let Ok(written) = &written {
                    tracing::debug!(
                        bytes = written.bytes,
                        log_bytes,
                        held_ms = written.copy_held.as_millis() as u64,
                        ms = started.elapsed().as_millis() as u64,
                        "state-store checkpoint written"
                    );
                }
                written.map(|written| written.bytes)
            });
        match thread {
            Ok(handle) => self.checkpointing = Some(handle),
            Err(error) => tracing::error!(%error, "could not start writing a checkpoint"),
        }
        Ok(())
    }

    /// Whether a checkpoint is being written now.
    pub fn is_checkpointing(&mut self) -> bool {
        if self
            .checkpointing
            .as_ref()
            .is_some_and(|running| running.is_finished())
        {
            self.reap_checkpoint();
        }
        self.checkpointing.is_some()
    }

    /// Waits for the checkpoint being written, if one is.
    #[cfg(test)]
    pub fn wait_for_checkpoint(&mut self) {
        self.reap_checkpoint();
    }

    /// Waits for a checkpoint being written, and notes its outcome.
    fn reap_checkpoint(&mut self) {
        let Some(handle) = self.checkpointing.take() else {
            return;
        };
        match handle.join() {
            Ok(Ok(bytes)) => self.checkpoint_bytes = bytes,
            // The log files it would have replaced are all still there:
            // nothing is lost, and the next one tries again.
            Ok(Err(error)) => tracing::error!(
                dir = %self.dir.display(),
                %error,
                "writing a state-store checkpoint failed; the log is kept"
            ),
            Err(_) => tracing::error!("the state-store checkpoint thread panicked"),
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // A store opened again in this process must not find a checkpoint
        // half renamed or log files half deleted.
        self.reap_checkpoint();
    }
}

fn log_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{WAL_PREFIX}{generation:016x}"))
}

/// The log files in `dir`, oldest first.
fn log_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir, "listing"))? {
        let entry = entry.map_err(io_error(dir, "listing"))?;
        let name = entry.file_name();
        let Some(generation) = name
            .to_str()
            .and_then(|name| name.strip_prefix(WAL_PREFIX))
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        else {
            continue;
        };
        files.push((generation, entry.path()));
    }
    files.sort();
    Ok(files)
}

fn create_log(dir: &Path, generation: u64) -> Result<File, StoreError> {
    let path = log_path(dir, generation);
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(io_error(&path, "creating"))?;
    file.write_all(WAL_MAGIC)
        .and_then(|()| file.write_all(&FORMAT.to_le_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(io_error(&path, "writing"))?;
    sync_dir(dir)?;
    Ok(file)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir, "syncing"))
}

/// Removes the checkpoint and the logs when either was written in an
/// earlier format (keys encoded another way): a new snapshot rebuilds the
/// store, and the sinks, finding their checkpoints foreign, rewrite their
/// targets. Nothing is lost that the source does not hold.
fn remove_if_older_format(dir: &Path) -> Result<(), StoreError> {
    let mut files = vec![dir.join(CHECKPOINT)];
    files.extend(log_files(dir)?.into_iter().map(|(_, path)| path));
    let mut older = None;
    for path in files.iter().filter(|path| path.exists()) {
        let mut header = [0u8; 16];
        let read = File::open(path).and_then(|mut file| file.read_exact(&mut header));
        let ours = header[..8] == WAL_MAGIC[..] || header[..8] == CHECKPOINT_MAGIC[..];
        if read.is_ok() && ours {
            let format = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
            if format < OLDEST_READ_FORMAT {
                older = Some(format);
            }
        }
    }
    let Some(format) = older else {
        return Ok(());
    };
    tracing::warn!(
        path = %dir.display(),
        found = format,
        format = FORMAT,
        "state store written in an earlier format: removed, a new snapshot follows"
    );
    for path in files.iter().filter(|path| path.exists()) {
        fs::remove_file(path).map_err(io_error(path, "removing"))?;
    }
    sync_dir(dir)
}

/// Checks the 16-byte header of a state file: its magic and format.
fn check_header(path: &Path, header: &[u8], magic: &[u8; 8]) -> Result<(), StoreError> {
    if header.len() < 16 || &header[..8] != magic {
        return Err(corrupt(path, "not a viewkeeper state file"));
    }
    let format = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
    if format > FORMAT {
        return Err(StoreError::NewerFormat {
            path: path.display().to_string(),
            found: format,
        });
    }
    if format < OLDEST_READ_FORMAT {
        // Older files were removed on opening ([`remove_if_older_format`]).
        return Err(corrupt(
            path,
            format!("format {format}, expected {OLDEST_READ_FORMAT} to {FORMAT}"),
        ));
    }
    Ok(())
}

/// Replays the frames of one log file; returns its length. A frame cut
/// short or failing its checksum ends the file: it is cut off there. Frames
/// are read one at a time: a log file can be as large as the whole state.
fn replay(
    path: &Path,
    tables: &mut Tables,
    outboxes: &mut HashMap<String, Queue>,
) -> Result<u64, StoreError> {
    let file = File::open(path).map_err(io_error(path, "opening"))?;
    let len = file.metadata().map_err(io_error(path, "reading"))?.len();
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; 16];
    if input.read_exact(&mut header).is_err() {
        return Err(corrupt(path, "not a viewkeeper state file"));
    }
    check_header(path, &header, WAL_MAGIC)?;
    let mut at = header.len() as u64;
    let mut record = Vec::new();
    while at < len {
        if !read_frame(&mut input, len - at, &mut record) {
            tracing::warn!(
                file = %path.display(),
                offset = at,
                dropped_bytes = len - at,
                "state log ends in a frame cut short by a crash: replay stops there"
            );
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_error(path, "opening"))?;
            file.set_len(at)
                .and_then(|()| file.sync_all())
                .map_err(io_error(path, "cutting"))?;
            return Ok(at);
        }
        for op in RedoReader::new(&record) {
            let op = op.map_err(|reason| corrupt(path, format!("frame at {at}: {reason}")))?;
            apply(op, tables, outboxes);
        }
        at += (FRAME_HEADER + record.len()) as u64;
    }
    Ok(len)
}

/// Reads the next frame's record into `record`; `false` when the frame is
/// not whole within the `remaining` bytes of the file, or its checksum fails.
fn read_frame(input: &mut impl Read, remaining: u64, record: &mut Vec<u8>) -> bool {
    let mut header = [0u8; FRAME_HEADER];
    if input.read_exact(&mut header).is_err() {
        return false;
    }
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if u64::from(length) + FRAME_HEADER as u64 > remaining {
        return false;
    }
    record.clear();
    record.resize(length as usize, 0);
    input.read_exact(record).is_ok() && crc32fast::hash(record) == crc
}

/// Applies one replayed operation.
fn apply(op: Op<'_>, tables: &mut Tables, outboxes: &mut HashMap<String, Queue>) {
    match op {
        Op::Put { table, key, value } => tables.apply(table, TableChange::Put(key, value)),
        Op::Delete { table, key } => tables.apply(table, TableChange::Delete(key)),
        Op::ClearRange { table, start, end } => {
            tables.apply(table, TableChange::ClearRange(start, end))
        }
        Op::Clear { table } => tables.apply(table, TableChange::Clear),
        Op::OutboxAppend {
            sink,
            sequence,
            entry,
        } => outboxes
            .entry(sink.to_owned())
            .or_default()
            .push(sequence, EntryBytes::from(entry)),
        Op::OutboxTruncate { sink, upto } => {
            if let Some(queue) = outboxes.get_mut(sink) {
                queue.release(upto);
            }
        }
        Op::OutboxClear { sink } => {
            outboxes.remove(sink);
        }
    }
}

/// A file written through a buffer, with the checksum of what it holds.
/// Callers encode straight into [`Self::buffer`]; the checksum is taken
/// over whole buffers when they are written (a checkpoint is millions of
/// entries of tens of bytes, and a checksum update and a copy per entry
/// cost more than the bytes).
struct Checksummed {
    file: File,
    buffer: Vec<u8>,
    crc: crc32fast::Hasher,
    written: u64,
}

impl Checksummed {
    const BUFFER: usize = 1 << 20;

    fn new(file: File) -> Checksummed {
        Checksummed {
            file,
            buffer: Vec::with_capacity(Self::BUFFER + 4096),
            crc: crc32fast::Hasher::new(),
            written: 0,
        }
    }

    /// Writes the buffer out once it is full.
    fn write_if_full(&mut self) -> io::Result<()> {
        if self.buffer.len() >= Self::BUFFER {
            self.write_buffer()?;
        }
        Ok(())
    }

    fn write_buffer(&mut self) -> io::Result<()> {
        self.crc.update(&self.buffer);
        self.written += self.buffer.len() as u64;
        self.file.write_all(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }

    /// Writes what is buffered and the checksum after it; returns the file
    /// and its length.
    fn finish(mut self) -> io::Result<(File, u64)> {
        self.write_buffer()?;
        let crc = self.crc.finalize();
        self.file.write_all(&crc.to_le_bytes())?;
        Ok((self.file, self.written + 4))
    }
}

/// A checkpoint written.
struct CheckpointWritten {
    bytes: u64,
    /// How long the copy of the tables was held: while it is, the engine
    /// copies every tree node it changes instead of changing it in place.
    copy_held: std::time::Duration,
}

/// Writes the checkpoint covering log files up to `covered`, renames it
/// into place and deletes those files. Each table of the copy is dropped
/// as soon as it is written out, and the outboxes before the file is
/// synced, so the engine stops copying the nodes it changes that much
/// earlier (reading the tables is most of a checkpoint's time, the sync
/// about a tenth).
fn write_checkpoint(
    dir: &Path,
    mut tables: Tables,
    outboxes: HashMap<String, Queue>,
    covered: u64,
) -> io::Result<CheckpointWritten> {
    let started = std::time::Instant::now();
    let tmp = dir.join(CHECKPOINT_TMP);
    let mut out = Checksummed::new(File::create(&tmp)?);
    out.buffer.extend_from_slice(CHECKPOINT_MAGIC);
    out.buffer.extend_from_slice(&FORMAT.to_le_bytes());
    out.buffer.extend_from_slice(&covered.to_le_bytes());
    for table in Table::ALL {
        out.buffer.push(table as u8);
        put_u64(&mut out.buffer, tables.len(table) as u64);
        for (key, value) in tables.iter(table) {
            put_bytes(&mut out.buffer, key);
            put_bytes(&mut out.buffer, value);
            out.write_if_full()?;
        }
        // Written out: the engine need not copy this table's nodes for us
        // while the others are written.
        tables.release(table);
    }
    out.buffer.push(OUTBOX_SECTION);
    put_u64(&mut out.buffer, outboxes.len() as u64);
    for (sink, queue) in &outboxes {
        put_bytes(&mut out.buffer, sink.as_bytes());
        put_u64(&mut out.buffer, queue.entries().len() as u64);
        for (sequence, entry) in queue.entries() {
            put_u64(&mut out.buffer, *sequence);
            put_bytes(&mut out.buffer, entry);
            out.write_if_full()?;
        }
    }
    drop((tables, outboxes));
    let copy_held = started.elapsed();
    let (file, size) = out.finish()?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(CHECKPOINT))?;
    File::open(dir)?.sync_all()?;
    for (generation, path) in log_files(dir).map_err(io::Error::other)? {
        if generation <= covered {
            fs::remove_file(path)?;
        }
    }
    Ok(CheckpointWritten {
        bytes: size,
        copy_held,
    })
}

/// What a checkpoint holds.
#[derive(Default)]
struct Checkpoint {
    tables: Tables,
    outboxes: HashMap<String, Queue>,
    /// The newest log file whose frames it includes.
    covered: u64,
    /// Its size on disk.
    bytes: u64,
}

/// Reads a checkpoint; `None` when there is none.
fn read_checkpoint(path: &Path) -> Result<Option<Checkpoint>, StoreError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, "opening")(e)),
    };
    let size = file.metadata().map_err(io_error(path, "reading"))?.len();
    let mut input = CheckpointReader {
        inner: BufReader::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
        path,
        remaining: size,
    };
    let mut header = [0u8; 24];
    input.read_exact(&mut header)?;
    check_header(path, &header, CHECKPOINT_MAGIC)?;
    let covered = u64::from_le_bytes(header[16..24].try_into().unwrap_or_default());
    let mut tables = Tables::default();
    // Tables follow in order; a checkpoint written before a table was added
    // ends them early, and the table starts empty.
    let mut next = input.byte()?;
    for table in Table::ALL {
        if next == OUTBOX_SECTION && table as u8 >= Table::OutputKeys as u8 {
            break;
        }
        if next != table as u8 {
            return Err(corrupt(path, format!("expected table {table:?}")));
        }
        let count = input.number()?;
        let mut entries = Vec::with_capacity(count.min(input.remaining / 2) as usize);
        for _ in 0..count {
            let key = input.bytes()?;
            let value = input.bytes()?;
            entries.push(Entry::new(&key, &value));
        }
        tables.load(table, entries);
        next = input.byte()?;
    }
    if next != OUTBOX_SECTION {
        return Err(corrupt(path, "expected the outboxes"));
    }
    let mut outboxes = HashMap::new();
    for _ in 0..input.number()? {
        let sink = String::from_utf8(input.bytes()?).map_err(|e| corrupt(path, e))?;
        let mut queue = Queue::default();
        for _ in 0..input.number()? {
            let sequence = input.number()?;
            queue.push(sequence, EntryBytes::from(input.bytes()?));
        }
        outboxes.insert(sink, queue);
    }
    let expected = input.crc.clone().finalize();
    let mut stored = [0u8; 4];
    input
        .inner
        .read_exact(&mut stored)
        .map_err(io_error(path, "reading"))?;
    if u32::from_le_bytes(stored) != expected {
        return Err(corrupt(path, "checksum mismatch"));
    }
    Ok(Some(Checkpoint {
        tables,
        outboxes,
        covered,
        bytes: size,
    }))
}

struct CheckpointReader<'p> {
    inner: BufReader<File>,
    crc: crc32fast::Hasher,
    path: &'p Path,
    /// Bytes of the file not read yet: no length read from it may exceed them.
    remaining: u64,
}

impl CheckpointReader<'_> {
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), StoreError> {
        self.inner
            .read_exact(buf)
            .map_err(|e| corrupt(self.path, format!("cut short ({e})")))?;
        self.crc.update(buf);
        self.remaining = self.remaining.saturating_sub(buf.len() as u64);
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        let mut byte = [0u8; 1];
        self.read_exact(&mut byte)?;
        Ok(byte[0])
    }

    fn number(&mut self) -> Result<u64, StoreError> {
        let mut encoded = Vec::with_capacity(10);
        loop {
            let byte = self.byte()?;
            encoded.push(byte);
            if byte & 0x80 == 0 || encoded.len() == 10 {
                break;
            }
        }
        take_u64(&encoded)
            .map(|(value, _)| value)
            .ok_or_else(|| corrupt(self.path, "bad number"))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, StoreError> {
        let len = self.number()?;
        if len > self.remaining {
            return Err(corrupt(
                self.path,
                format!("a field of {len} bytes where {} remain", self.remaining),
            ));
        }
        let len = usize::try_from(len).map_err(|_| corrupt(self.path, "length overflows"))?;
        let mut bytes = vec![0u8; len];
        self.read_exact(&mut bytes)?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint written before `OutputKeys` existed ends its tables
    /// after `Names`: it reads, with that table empty.
    #[test]
    fn a_checkpoint_without_a_later_table_reads_with_it_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut tables = Tables::default();
        tables.load(Table::Rows, vec![Entry::new(b"row", b"values")]);
        tables.load(Table::Names, vec![Entry::new(b"name", b"id")]);
        write_checkpoint(dir.path(), tables, HashMap::new(), 7).unwrap();
        let path = dir.path().join(CHECKPOINT);
        let mut bytes = fs::read(&path).unwrap();

        // The last table (empty: its byte and a count of 0) comes right
        // before the outboxes (their marker and a count of 0) and the CRC.
        let body = bytes.len() - 4;
        assert_eq!(
            &bytes[body - 4..body],
            &[Table::OutputKeys as u8, 0, OUTBOX_SECTION, 0]
        );
        bytes.drain(body - 4..body - 2);
        let body = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_le_bytes());
        fs::write(&path, &bytes).unwrap();

        let read = read_checkpoint(&path).unwrap().expect("a checkpoint");
        assert_eq!(read.covered, 7);
        assert_eq!(read.tables.get(Table::Rows, b"row"), Some(&b"values"[..]));
        assert_eq!(read.tables.get(Table::Names, b"name"), Some(&b"id"[..]));
        assert_eq!(read.tables.len(Table::OutputKeys), 0);
    }
}
