/*
 * The relayed packet's way through the shared RTP port, in C.
 *
 * A relayed G.711 call does almost nothing per packet: count it, give it the
 * other leg's SSRC, sequence number and timestamp, and send it on. Written in
 * Python that little costs two socket calls and an interpreted dispatch per
 * packet, which on our machines holds a core to about 1,300 relayed calls
 * (docs/performance.md). Here the shared port is read with recvmmsg and written
 * with sendmmsg, 64 datagrams a call, and the usual packet of a pair lent to
 * this table never becomes a Python object.
 *
 * The Python side (confserver/adapters/media/relay_offload.py) stays in charge. It
 * lends a pair of relayed legs when both are in the usual state (audio flowing
 * both ways, no digit being sent, no SRTP) together with their counters, and
 * reclaims them, counters updated, before it does anything else with either
 * leg. This table only:
 *   - counts a packet as AudioStream.receive does (RFC 3550 A.1 sequence and
 *     A.8 jitter, ported line for line from confserver/media/stats.py);
 *   - rewrites its header as AudioStream._relayed does;
 *   - hands every other datagram back to Python, in order: any packet not from
 *     a lent leg, and anything unusual from one (RTCP, another payload type,
 *     a digit, another SSRC, header extensions, CSRCs, padding). After such a
 *     packet the pair is held: its later packets go to Python too until Python
 *     reclaims it, so a leg's packets are never reordered;
 *   - says which pairs have gone quiet in either direction (``due``), where
 *     Python's comfort noise and timeouts take over.
 * IPv4 only: Python serves IPv6 shared ports itself.
 *
 * With a port pair per call there is no shared socket: a pair is lent with its
 * two RTP sockets, which the table then watches in its own epoll set (``poll``,
 * whose descriptor the reactor reads) until they are reclaimed. Each leg's
 * packets must come from its latched address; relayed packets leave from the
 * other leg's socket, and what is handed back says which socket it came in on.
 * A datagram from another address is handed back without holding the pair: it
 * is none of the leg's (the session drops it), so the leg's own stay in order.
 *
 * Transcoded pairs. A G.711 leg bridged to a G.722 leg whose codec works at
 * 8 kHz (spandsp's G722_SAMPLE_RATE_8000: the lower sub-band only), or a
 * mu-law leg bridged to an A-law one, carry the same frames on the same 8 kHz
 * RTP clock with one payload octet a sample: such a packet is converted in
 * place, with the header rewritten as for any relayed packet. G.711 goes
 * through tables built as confserver/media/codecs/g711.py builds its own;
 * G.722 through the very spandsp states the legs' Python codecs own (their
 * addresses are lent with the pair), so the codec state runs on unbroken
 * whichever side moves the packet. spandsp is found with dlopen(RTLD_NOLOAD):
 * Python has loaded it (confserver/media/codecs/spandsp.py) when a G.722 leg
 * exists, and this module does not link against it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define MAX_DATAGRAM 2048
#define SEQ_MOD 65536
#define MAX_DROPOUT 3000
#define MAX_MISORDER 100
#define MIN_SEQUENTIAL 2

typedef long long i64; /* what PyArg_ParseTuple's "L" fills */

/* what a leg's payloads are, for converting between legs (0: copied untouched) */
enum { CODEC_UNTOUCHED, CODEC_PCMU, CODEC_PCMA, CODEC_G722_8K, CODEC_COUNT };

/* One leg of a lent pair: what it receives (statistics) and what it sends
 * (numbering), as the fields of one relay_offload.LegState tuple. */
typedef struct {
    uint64_t key; /* IPv4 << 16 | port: where its packets come from and go to */
    int fd;       /* its own RTP socket (a port pair per call), or -1: the shared one */
    struct sockaddr_in addr;
    /* receive side */
    i64 rx_pt, rx_ssrc, clock_rate, packets_received;
    i64 max_seq, cycles, base_seq, bad_seq, probation, received;
    i64 expected_prior, received_prior;
    double jitter;
    int has_transit;
    i64 transit;
    /* send side */
    i64 tx_pt, tx_ssrc, seq, ts, frame_ts;
    int has_relay_from;
    i64 relay_from, seq_offset, ts_offset, packets_sent, octets_sent;
    double relayed_at, last_activity;
    /* its codec (CODEC_*) and, for G.722, the spandsp encoder and decoder states
       of its Python codec object (which outlives the loan) */
    int codec;
    void *g722_encoder, *g722_decoder;
} Leg;

typedef struct {
    Leg legs[2];
    int used;
    int held; /* an unusual packet went to Python: the rest do until reclaimed */
    double silent_after;
} Pair;

typedef struct {
    PyObject_HEAD
    int fd;   /* the shared RTP socket, or -1 */
    int epfd; /* the lent legs' own sockets, when each call has its own */
    Pair *pairs;
    Py_ssize_t npairs, cap_pairs;
    Py_ssize_t *free_pairs;
    Py_ssize_t nfree;
    int32_t *slots; /* hash of leg keys: pair * 2 + side, -1 empty */
    size_t nslots, nkeys;
    Py_ssize_t lent;
    unsigned long long relayed, returned, send_errors;
    unsigned char (*buffers)[MAX_DATAGRAM];
    struct sockaddr_in *sources;
    struct sockaddr_in6 *sources6;
} RelayTable;

/* ------------------------------------------------------------------ hash */

static size_t slot_of(uint64_t key, size_t nslots)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (nslots - 1);
}

static int32_t find_leg(RelayTable *t, uint64_t key)
{
    if (t->nkeys == 0)
        return -1;
    size_t i = slot_of(key, t->nslots);
    for (;;) {
        int32_t id = t->slots[i];
        if (id < 0)
            return -1;
        if (t->pairs[id / 2].legs[id % 2].key == key)
            return id;
        i = (i + 1) & (t->nslots - 1);
    }
}

static void put_slot(RelayTable *t, uint64_t key, int32_t id)
{
    size_t i = slot_of(key, t->nslots);
    while (t->slots[i] >= 0)
        i = (i + 1) & (t->nslots - 1);
    t->slots[i] = id;
}

static int grow_slots(RelayTable *t, size_t want)
{
    size_t n = 64;
    while (n < want * 2)
        n *= 2;
    if (n <= t->nslots)
        return 0;
    int32_t *slots = PyMem_Malloc(n * sizeof *slots);
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        slots[i] = -1;
    int32_t *old = t->slots;
    size_t oldn = t->nslots;
    t->slots = slots;
    t->nslots = n;
    for (size_t i = 0; i < oldn; i++)
        if (old[i] >= 0)
            put_slot(t, t->pairs[old[i] / 2].legs[old[i] % 2].key, old[i]);
    PyMem_Free(old);
    return 0;
}

/* linear probing: deleting shifts the run back so lookups never stop early */
static void remove_key(RelayTable *t, uint64_t key)
{
    size_t mask = t->nslots - 1, i = slot_of(key, t->nslots);
    for (;;) {
        int32_t id = t->slots[i];
        if (id < 0)
            return;
        if (t->pairs[id / 2].legs[id % 2].key == key)
            break;
        i = (i + 1) & mask;
    }
    t->slots[i] = -1;
    t->nkeys--;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        int32_t id = t->slots[j];
        if (id < 0)
            return;
        size_t home = slot_of(t->pairs[id / 2].legs[id % 2].key, t->nslots);
        /* move it back when its home is not cyclically within (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            t->slots[i] = id;
            t->slots[j] = -1;
            i = j;
        }
    }
}

/* ------------------------------------------------------- statistics */

static void init_seq(Leg *l, i64 seq)
{
    l->base_seq = seq;
    l->max_seq = seq;
    l->bad_seq = SEQ_MOD + 1;
    l->cycles = 0;
    l->received = 0;
    l->received_prior = 0;
    l->expected_prior = 0;
}

/* ReceiverStats.update_seq: RFC 3550 A.1 (the leg is initialized when lent) */
static void update_seq(Leg *l, i64 seq)
{
    i64 udelta = (seq - l->max_seq) & (SEQ_MOD - 1);
    if (l->probation) {
        if (seq == ((l->max_seq + 1) & (SEQ_MOD - 1))) {
            l->probation--;
            l->max_seq = seq;
            if (l->probation == 0) {
                init_seq(l, seq);
                l->received++;
            }
        } else {
            l->probation = MIN_SEQUENTIAL - 1;
            l->max_seq = seq;
        }
        return;
    }
    if (udelta < MAX_DROPOUT) {
        if (seq < l->max_seq)
            l->cycles += SEQ_MOD;
        l->max_seq = seq;
    } else if (udelta <= SEQ_MOD - MAX_MISORDER) {
        if (seq == l->bad_seq) {
            init_seq(l, seq); /* the source restarted: resync */
        } else {
            l->bad_seq = (seq + 1) & (SEQ_MOD - 1);
            return;
        }
    }
    l->received++;
}

/* ReceiverStats.update: the in-order packet without the general path, then jitter */
static void count_received(Leg *l, i64 seq, i64 timestamp, double now)
{
    if (seq == ((l->max_seq + 1) & 0xFFFF) && !l->probation) {
        if (seq == 0)
            l->cycles += SEQ_MOD;
        l->max_seq = seq;
        l->received++;
    } else {
        update_seq(l, seq);
    }
    i64 transit = (i64)(now * (double)l->clock_rate) - timestamp;
    if (l->has_transit) {
        i64 d = transit - l->transit;
        l->jitter += ((double)(d < 0 ? -d : d) - l->jitter) / 16;
    }
    l->transit = transit;
    l->has_transit = 1;
    l->packets_received++;
}

/* AudioStream._relayed: the header this leg sends a relayed packet with */
static void relay_header(Leg *out, unsigned char *h, uint32_t source, i64 sequence,
                         i64 timestamp, int marker, Py_ssize_t payload)
{
    if (!out->has_relay_from || out->relay_from != source) {
        out->has_relay_from = 1;
        out->relay_from = source;
        out->seq_offset = (out->seq - sequence) & 0xFFFF;
        out->ts_offset = (out->ts - timestamp) & 0xFFFFFFFFll;
    }
    i64 seq = (sequence + out->seq_offset) & 0xFFFF;
    i64 ts = (timestamp + out->ts_offset) & 0xFFFFFFFFll;
    if (((seq - out->seq) & 0xFFFF) < 0x8000)
        out->seq = (seq + 1) & 0xFFFF;
    if (((ts - out->ts) & 0xFFFFFFFFll) < 0x80000000ll)
        out->ts = (ts + out->frame_ts) & 0xFFFFFFFFll;
    h[0] = 0x80;
    h[1] = (unsigned char)((marker ? 0x80 : 0) | (out->tx_pt & 0x7F));
    h[2] = (unsigned char)(seq >> 8);
    h[3] = (unsigned char)seq;
    h[4] = (unsigned char)(ts >> 24);
    h[5] = (unsigned char)(ts >> 16);
    h[6] = (unsigned char)(ts >> 8);
    h[7] = (unsigned char)ts;
    h[8] = (unsigned char)(out->tx_ssrc >> 24);
    h[9] = (unsigned char)(out->tx_ssrc >> 16);
    h[10] = (unsigned char)(out->tx_ssrc >> 8);
    h[11] = (unsigned char)out->tx_ssrc;
    out->packets_sent++;
    out->octets_sent += payload;
}

/* ------------------------------------------------------------ codecs */

static int16_t ulaw_decode[256], alaw_decode[256];
static uint8_t ulaw_encode[65536], alaw_encode[65536]; /* by sample + 32768 */

/* the tables of confserver/media/codecs/g711.py, entry for entry */
static void build_g711_tables(void)
{
    static const int segment_ends[8] = {0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF};
    for (int c = 0; c < 256; c++) {
        int u = ~c & 0xFF, exponent = (u >> 4) & 7, mantissa = u & 0x0F;
        int magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
        ulaw_decode[c] = (int16_t)((u & 0x80) ? -magnitude : magnitude);
        int a = c ^ 0x55;
        exponent = (a >> 4) & 7;
        mantissa = a & 0x0F;
        magnitude = exponent == 0 ? (mantissa << 4) + 8
                                  : ((mantissa << 4) + 0x108) << (exponent - 1);
        alaw_decode[c] = (int16_t)((a & 0x80) ? magnitude : -magnitude);
    }
    for (int sample = -32768; sample < 32768; sample++) {
        int pcm = sample >> 2; /* mu-law: 14-bit, bias 33, clipped at 8159 */
        int mask = pcm < 0 ? 0x7F : 0xFF;
        int magnitude = (pcm < 0 ? -pcm : pcm);
        magnitude = (magnitude < 8159 ? magnitude : 8159) + 0x21;
        int segment = 0;
        while (segment < 8 && segment_ends[segment] < magnitude)
            segment++;
        int code = segment >= 8 ? 0x7F : (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F);
        ulaw_encode[sample + 32768] = (uint8_t)((code ^ mask) & 0xFF);
        /* A-law: 13-bit magnitude, sign bit set for non-negative samples */
        int sign = sample >= 0 ? 0x80 : 0;
        magnitude = (sample < 0 ? -sample - 1 : sample) >> 3;
        int exponent = 0;
        if (magnitude >= 32) {
            int octave = 0;
            while ((magnitude >> (octave + 1)) > 0)
                octave++;
            exponent = octave - 4 > 7 ? 7 : octave - 4;
        }
        int mantissa = (exponent == 0 ? magnitude >> 1 : magnitude >> exponent) & 0x0F;
        alaw_encode[sample + 32768] = (uint8_t)((sign | (exponent << 4) | mantissa) ^ 0x55);
    }
}

typedef int (*g722_encode_fn)(void *state, uint8_t *out, const int16_t *amp, int len);
typedef int (*g722_decode_fn)(void *state, int16_t *amp, const uint8_t *in, int len);
static g722_encode_fn g722_encode;
static g722_decode_fn g722_decode;

/* spandsp's G.722, as Python loaded it; 0, or -1 with ValueError set */
static int find_spandsp(void)
{
    if (g722_encode != NULL && g722_decode != NULL)
        return 0;
    void *lib = dlopen("libspandsp.so.2", RTLD_NOW | RTLD_NOLOAD);
    if (lib != NULL) {
        g722_encode = (g722_encode_fn)dlsym(lib, "g722_encode");
        g722_decode = (g722_decode_fn)dlsym(lib, "g722_decode");
        dlclose(lib); /* Python's handle keeps it loaded */
    }
    if (g722_encode == NULL || g722_decode == NULL) {
        g722_encode = NULL;
        g722_decode = NULL;
        PyErr_SetString(PyExc_ValueError, "spandsp's G.722 (libspandsp.so.2) is not loaded");
        return -1;
    }
    return 0;
}

/* ``n`` payload octets received on ``in``, converted in place to ``out``'s codec
   (one octet a sample both ways, so the length stays); 0, or -1 with the payload
   untouched when the decoder gave back another number of samples */
static int convert_payload(const Leg *in, const Leg *out, unsigned char *p, Py_ssize_t n)
{
    int16_t pcm[MAX_DATAGRAM];
    const int16_t *table = NULL;
    if (in->codec == CODEC_PCMU)
        table = ulaw_decode;
    else if (in->codec == CODEC_PCMA)
        table = alaw_decode;
    if (table != NULL) {
        for (Py_ssize_t i = 0; i < n; i++)
            pcm[i] = table[p[i]];
    } else if (g722_decode(in->g722_decoder, pcm, p, (int)n) != n) {
        return -1;
    }
    if (out->codec == CODEC_G722_8K) {
        g722_encode(out->g722_encoder, p, pcm, (int)n); /* at 8 kHz: an octet a sample */
        return 0;
    }
    const uint8_t *encode = out->codec == CODEC_PCMU ? ulaw_encode : alaw_encode;
    for (Py_ssize_t i = 0; i < n; i++)
        p[i] = encode[(uint16_t)(pcm[i] + 32768)];
    return 0;
}

/* --------------------------------------------------------- the type */

static uint64_t key_of(const struct sockaddr_in *a)
{
    return ((uint64_t)ntohl(a->sin_addr.s_addr) << 16) | ntohs(a->sin_port);
}

static void RelayTable_dealloc(RelayTable *self)
{
    if (self->epfd > 0)
        close(self->epfd);
    PyMem_Free(self->pairs);
    PyMem_Free(self->free_pairs);
    PyMem_Free(self->slots);
    PyMem_Free(self->buffers);
    PyMem_Free(self->sources);
    PyMem_Free(self->sources6);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int RelayTable_init(RelayTable *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"fd", NULL};
    int fd;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i", names, &fd))
        return -1;
    if (fd < -1) {
        PyErr_SetString(PyExc_ValueError,
                         "fd must be the shared socket's descriptor, or -1 for none");
        return -1;
    }
    self->fd = fd;
    if (self->epfd <= 0) {
        self->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (self->epfd < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
    }
    if (self->buffers == NULL) {
        self->buffers = PyMem_Malloc(BATCH * MAX_DATAGRAM);
        self->sources = PyMem_Malloc(BATCH * sizeof *self->sources);
        self->sources6 = PyMem_Malloc(BATCH * sizeof *self->sources6);
        if (self->buffers == NULL || self->sources == NULL || self->sources6 == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    return grow_slots(self, 32);
}

/* the fields of a relay_offload.LegState tuple, in order */
#define LEG_FORMAT "sLLLLLLLLLLLLLdOLLLLLOLLLLdd"

static int leg_from_tuple(PyObject *state, Leg *l)
{
    const char *host;
    long long port;
    PyObject *transit, *relay_from;
    memset(l, 0, sizeof *l);
    if (!PyTuple_Check(state)) {
        PyErr_SetString(PyExc_TypeError, "a leg's state is a tuple");
        return -1;
    }
    if (!PyArg_ParseTuple(state, LEG_FORMAT, &host, &port, &l->rx_pt, &l->rx_ssrc,
                          &l->clock_rate, &l->packets_received, &l->max_seq, &l->cycles,
                          &l->base_seq, &l->bad_seq, &l->probation, &l->received,
                          &l->expected_prior, &l->received_prior, &l->jitter, &transit,
                          &l->tx_pt, &l->tx_ssrc, &l->seq, &l->ts, &l->frame_ts, &relay_from,
                          &l->seq_offset, &l->ts_offset, &l->packets_sent, &l->octets_sent,
                          &l->relayed_at, &l->last_activity))
        return -1;
    if (port < 1 || port > 65535) {
        PyErr_Format(PyExc_ValueError, "port %lld is not a UDP port", port);
        return -1;
    }
    l->addr.sin_family = AF_INET;
    l->addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &l->addr.sin_addr) != 1) {
        PyErr_Format(PyExc_ValueError, "%s is not an IPv4 address", host);
        return -1;
    }
    l->key = key_of(&l->addr);
    if (transit != Py_None) {
        l->transit = PyLong_AsLongLong(transit);
        if (l->transit == -1 && PyErr_Occurred())
            return -1;
        l->has_transit = 1;
    }
    if (relay_from != Py_None) {
        l->relay_from = PyLong_AsLongLong(relay_from);
        if (l->relay_from == -1 && PyErr_Occurred())
            return -1;
        l->has_relay_from = 1;
    }
    if (l->clock_rate <= 0 || l->probation < 0) {
        PyErr_SetString(PyExc_ValueError, "a leg's clock rate must be positive");
        return -1;
    }
    return 0;
}

static PyObject *leg_to_tuple(const Leg *l)
{
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &l->addr.sin_addr, host, sizeof host);
    PyObject *transit = l->has_transit ? PyLong_FromLongLong(l->transit) : Py_NewRef(Py_None);
    PyObject *relay_from =
        l->has_relay_from ? PyLong_FromLongLong(l->relay_from) : Py_NewRef(Py_None);
    if (transit == NULL || relay_from == NULL) {
        Py_XDECREF(transit);
        Py_XDECREF(relay_from);
        return NULL;
    }
    return Py_BuildValue("(sLLLLLLLLLLLLLdNLLLLLNLLLLdd)", host,
                         (long long)ntohs(l->addr.sin_port), l->rx_pt, l->rx_ssrc,
                         l->clock_rate, l->packets_received, l->max_seq, l->cycles,
                         l->base_seq, l->bad_seq, l->probation, l->received,
                         l->expected_prior, l->received_prior, l->jitter, transit, l->tx_pt,
                         l->tx_ssrc, l->seq, l->ts, l->frame_ts, relay_from, l->seq_offset,
                         l->ts_offset, l->packets_sent, l->octets_sent, l->relayed_at,
                         l->last_activity);
}

/* a leg's codec as lend's ``codecs`` gives it: (CODEC_*, encoder, decoder) */
static int codec_from_tuple(PyObject *codec, Leg *l)
{
    int id;
    unsigned long long encoder, decoder;
    if (!PyTuple_Check(codec)) {
        PyErr_SetString(PyExc_TypeError, "a leg's codec is a tuple (codec, encoder, decoder)");
        return -1;
    }
    if (!PyArg_ParseTuple(codec, "iKK", &id, &encoder, &decoder))
        return -1;
    if (id < 0 || id >= CODEC_COUNT) {
        PyErr_Format(PyExc_ValueError, "%d is not a codec the compiled relay knows", id);
        return -1;
    }
    if (id == CODEC_G722_8K && (encoder == 0 || decoder == 0)) {
        PyErr_SetString(PyExc_ValueError, "a G.722 leg needs its encoder and decoder");
        return -1;
    }
    l->codec = id;
    l->g722_encoder = (void *)(uintptr_t)encoder;
    l->g722_decoder = (void *)(uintptr_t)decoder;
    return 0;
}

/* the legs' codecs, when lend was given them: equal, or both convertible */
static int codecs_from(PyObject *codecs, Pair *pair)
{
    if (codecs == Py_None)
        return 0;
    if (!PyTuple_Check(codecs) || PyTuple_GET_SIZE(codecs) != 2) {
        PyErr_SetString(PyExc_TypeError, "codecs is a pair of (codec, encoder, decoder)");
        return -1;
    }
    for (int side = 0; side < 2; side++)
        if (codec_from_tuple(PyTuple_GET_ITEM(codecs, side), &pair->legs[side]) < 0)
            return -1;
    int a = pair->legs[0].codec, b = pair->legs[1].codec;
    if (a != b && (a == CODEC_UNTOUCHED || b == CODEC_UNTOUCHED)) {
        PyErr_SetString(PyExc_ValueError,
                         "a leg copied untouched cannot be bridged to another codec");
        return -1;
    }
    if ((a == CODEC_G722_8K) != (b == CODEC_G722_8K) && find_spandsp() < 0)
        return -1;
    return 0;
}

static PyObject *RelayTable_lend(RelayTable *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"a", "b", "silent_after", "fd_a", "fd_b", "codecs", NULL};
    PyObject *a, *b, *codecs = Py_None;
    double silent_after;
    int fd_a = -1, fd_b = -1;
    Pair pair;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOd|iiO", names, &a, &b, &silent_after,
                                     &fd_a, &fd_b, &codecs))
        return NULL;
    memset(&pair, 0, sizeof pair);
    if (leg_from_tuple(a, &pair.legs[0]) < 0 || leg_from_tuple(b, &pair.legs[1]) < 0
            || codecs_from(codecs, &pair) < 0)
        return NULL;
    if ((fd_a < 0) != (fd_b < 0) || fd_a < -1 || fd_b < -1 || (fd_a >= 0 && fd_a == fd_b)) {
        PyErr_SetString(PyExc_ValueError,
                         "both legs have their own sockets (two descriptors), or neither");
        return NULL;
    }
    if (fd_a < 0 && self->fd < 0) {
        PyErr_SetString(PyExc_ValueError, "no shared socket: lend the legs' own sockets");
        return NULL;
    }
    pair.legs[0].fd = fd_a;
    pair.legs[1].fd = fd_b;
    if (pair.legs[0].key == pair.legs[1].key || find_leg(self, pair.legs[0].key) >= 0
            || find_leg(self, pair.legs[1].key) >= 0) {
        PyErr_SetString(PyExc_ValueError, "a leg's address is already lent");
        return NULL;
    }
    if (grow_slots(self, self->nkeys + 2) < 0)
        return NULL;
    Py_ssize_t index;
    if (self->nfree) {
        index = self->free_pairs[--self->nfree];
    } else {
        if (self->npairs == self->cap_pairs) {
            Py_ssize_t cap = self->cap_pairs ? self->cap_pairs * 2 : 64;
            Pair *pairs = PyMem_Realloc(self->pairs, cap * sizeof *pairs);
            if (pairs == NULL)
                return PyErr_NoMemory();
            self->pairs = pairs;
            Py_ssize_t *free_pairs = PyMem_Realloc(self->free_pairs, cap * sizeof *free_pairs);
            if (free_pairs == NULL)
                return PyErr_NoMemory();
            self->free_pairs = free_pairs;
            self->cap_pairs = cap;
        }
        index = self->npairs++;
    }
    if (fd_a >= 0) {
        struct epoll_event ev = {.events = EPOLLIN};
        ev.data.u64 = (uint64_t)(index * 2);
        if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd_a, &ev) < 0) {
            self->free_pairs[self->nfree++] = index;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        ev.data.u64 = (uint64_t)(index * 2 + 1);
        if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd_b, &ev) < 0) {
            epoll_ctl(self->epfd, EPOLL_CTL_DEL, fd_a, NULL);
            self->free_pairs[self->nfree++] = index;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
    }
    pair.used = 1;
    pair.silent_after = silent_after;
    self->pairs[index] = pair;
    put_slot(self, pair.legs[0].key, (int32_t)(index * 2));
    put_slot(self, pair.legs[1].key, (int32_t)(index * 2 + 1));
    self->nkeys += 2;
    self->lent++;
    return PyLong_FromSsize_t(index + 1);
}

static Pair *pair_of(RelayTable *self, Py_ssize_t handle)
{
    if (handle < 1 || handle > self->npairs || !self->pairs[handle - 1].used) {
        PyErr_Format(PyExc_KeyError, "no pair %zd is lent", handle);
        return NULL;
    }
    return &self->pairs[handle - 1];
}

static PyObject *RelayTable_reclaim(RelayTable *self, PyObject *arg)
{
    Py_ssize_t handle = PyLong_AsSsize_t(arg);
    if (handle == -1 && PyErr_Occurred())
        return NULL;
    Pair *pair = pair_of(self, handle);
    if (pair == NULL)
        return NULL;
    PyObject *a = leg_to_tuple(&pair->legs[0]);
    PyObject *b = a == NULL ? NULL : leg_to_tuple(&pair->legs[1]);
    if (b == NULL) {
        Py_XDECREF(a);
        return NULL;
    }
    remove_key(self, pair->legs[0].key);
    remove_key(self, pair->legs[1].key);
    for (int side = 0; side < 2; side++)
        if (pair->legs[side].fd >= 0) /* closed meanwhile: epoll forgot it already */
            epoll_ctl(self->epfd, EPOLL_CTL_DEL, pair->legs[side].fd, NULL);
    pair->used = 0;
    self->free_pairs[self->nfree++] = handle - 1;
    self->lent--;
    return Py_BuildValue("(NN)", a, b);
}

/* a sender's address as Python's recvfrom gives it: (host, port) */
static PyObject *address_of(const struct sockaddr *from)
{
    char host[INET6_ADDRSTRLEN];
    int port;
    if (from->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)from;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)from;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    }
    return Py_BuildValue("(si)", host, port);
}

/* a datagram for Python appended to out: (data, (host, port)), or with fd >= 0
   (it came in on a lent leg's own socket) (fd, data, (host, port)) */
static int hand_back(PyObject *out, int fd, const unsigned char *data, Py_ssize_t len,
                     const struct sockaddr *from)
{
    PyObject *address = address_of(from);
    if (address == NULL)
        return -1;
    PyObject *item = fd >= 0 ? Py_BuildValue("(iy#N)", fd, (const char *)data, len, address)
                             : Py_BuildValue("(y#N)", (const char *)data, len, address);
    if (item == NULL)
        return -1;
    int rc = PyList_Append(out, item);
    Py_DECREF(item);
    return rc;
}

/* the usual packet from leg ``id``: counted, rewritten in place; 1 to send, 0 not */
static int relay_from(RelayTable *self, int32_t id, unsigned char *d, Py_ssize_t len,
                      double now, Leg **to)
{
    Pair *pair = &self->pairs[id / 2];
    if (pair->held)
        return 0;
    Leg *in = &pair->legs[id % 2], *out = &pair->legs[1 - id % 2];
    int b1 = len >= 12 ? d[1] : 0;
    uint32_t ssrc = len >= 12
        ? (uint32_t)d[8] << 24 | (uint32_t)d[9] << 16 | (uint32_t)d[10] << 8 | d[11] : 0;
    if (len < 12 || d[0] != 0x80 || (b1 >= 192 && b1 <= 223) || (b1 & 0x7F) != in->rx_pt
            || ssrc != (uint32_t)in->rx_ssrc) {
        pair->held = 1; /* this one and the pair's later packets: Python's */
        return 0;
    }
    if (in->codec != out->codec && convert_payload(in, out, d + 12, len - 12) < 0) {
        pair->held = 1;
        return 0;
    }
    i64 seq = d[2] << 8 | d[3];
    i64 ts = (i64)((uint32_t)d[4] << 24 | (uint32_t)d[5] << 16 | (uint32_t)d[6] << 8 | d[7]);
    count_received(in, seq, ts, now);
    in->last_activity = now;
    out->relayed_at = now;
    relay_header(out, d, ssrc, seq, ts, b1 > 0x7F, len - 12);
    *to = out;
    return 1;
}

/* the same for a datagram on the shared socket, its leg found by its source */
static int relay_one(RelayTable *self, unsigned char *d, Py_ssize_t len,
                     const struct sockaddr_in *from, double now, Leg **to)
{
    int32_t id = find_leg(self, key_of(from));
    if (id < 0 || self->pairs[id / 2].legs[id % 2].fd >= 0)
        return 0; /* not lent, or lent with its own socket (a stray copy): Python's */
    return relay_from(self, id, d, len, now, to);
}

/* up to ``want`` datagrams from ``fd`` into the table's buffers (their senders in
   sources6), without blocking: how many, or <= 0 when none (EAGAIN) or an error */
static int receive(RelayTable *self, int fd, struct mmsghdr *in, struct iovec *iov, int want)
{
    for (int i = 0; i < want; i++) {
        iov[i].iov_base = self->buffers[i];
        iov[i].iov_len = MAX_DATAGRAM;
        memset(&in[i].msg_hdr, 0, sizeof in[i].msg_hdr);
        in[i].msg_hdr.msg_iov = &iov[i];
        in[i].msg_hdr.msg_iovlen = 1;
        in[i].msg_hdr.msg_name = &self->sources6[i];
        in[i].msg_hdr.msg_namelen = sizeof self->sources6[i];
    }
    int n;
    Py_BEGIN_ALLOW_THREADS
    n = recvmmsg(fd, in, (unsigned)want, MSG_DONTWAIT, NULL);
    Py_END_ALLOW_THREADS
    return n;
}

static PyObject *RelayTable_drain(RelayTable *self, PyObject *args)
{
    Py_ssize_t limit;
    double now;
    if (!PyArg_ParseTuple(args, "nd", &limit, &now))
        return NULL;
    PyObject *back = PyList_New(0);
    if (back == NULL || self->fd < 0)
        return back;
    struct mmsghdr in[BATCH], out[BATCH];
    struct iovec iov[BATCH], oiov[BATCH];
    Py_ssize_t taken = 0;
    while (taken < limit) {
        int want = limit - taken < BATCH ? (int)(limit - taken) : BATCH;
        int n = receive(self, self->fd, in, iov, want);
        if (n <= 0)
            break; /* EAGAIN: all read; or an error surfaced, as recvfrom would */
        taken += n;
        int k = 0;
        for (int i = 0; i < n; i++) {
            unsigned char *d = self->buffers[i];
            Py_ssize_t len = (Py_ssize_t)in[i].msg_len;
            const struct sockaddr *from = (const struct sockaddr *)&self->sources6[i];
            Leg *to = NULL;
            if (from->sa_family == AF_INET
                    && relay_one(self, d, len, (const struct sockaddr_in *)from, now, &to)) {
                oiov[k].iov_base = d;
                oiov[k].iov_len = (size_t)len;
                memset(&out[k].msg_hdr, 0, sizeof out[k].msg_hdr);
                out[k].msg_hdr.msg_iov = &oiov[k];
                out[k].msg_hdr.msg_iovlen = 1;
                out[k].msg_hdr.msg_name = &to->addr;
                out[k].msg_hdr.msg_namelen = sizeof to->addr;
                k++;
                self->relayed++;
            } else {
                self->returned++;
                if (hand_back(back, -1, d, len, from) < 0) {
                    Py_DECREF(back);
                    return NULL;
                }
            }
        }
        int sent = 0;
        while (sent < k) {
            int r;
            Py_BEGIN_ALLOW_THREADS
            r = sendmmsg(self->fd, out + sent, (unsigned)(k - sent), 0);
            Py_END_ALLOW_THREADS
            if (r > 0) {
                sent += r;
            } else {
                /* a full buffer or an unreachable peer loses that packet, as UDP does */
                self->send_errors++;
                sent++;
            }
        }
        if (n < want)
            break;
    }
    return back;
}

static PyObject *RelayTable_poll(RelayTable *self, PyObject *args)
{
    Py_ssize_t limit;
    double now;
    if (!PyArg_ParseTuple(args, "nd", &limit, &now))
        return NULL;
    PyObject *back = PyList_New(0);
    if (back == NULL)
        return NULL;
    struct epoll_event events[BATCH];
    struct mmsghdr in[BATCH];
    struct iovec iov[BATCH];
    Py_ssize_t taken = 0;
    int ready = BATCH;
    /* until limit, or a wait that found fewer ready sockets than it could report
       (a tick's poll must leave nothing unread, or its pairs would look quiet) */
    while (ready == BATCH && taken < limit) {
        Py_BEGIN_ALLOW_THREADS
        ready = epoll_wait(self->epfd, events, BATCH, 0);
        Py_END_ALLOW_THREADS
        for (int e = 0; e < ready && taken < limit; e++) {
            int32_t id = (int32_t)events[e].data.u64;
            if (id / 2 >= self->npairs || !self->pairs[id / 2].used)
                continue;
            int fd = self->pairs[id / 2].legs[id % 2].fd;
            /* a few at a time: each socket is one call's, and level-triggered epoll
               reports it again while more wait */
            int want = limit - taken < 8 ? (int)(limit - taken) : 8;
            int n = receive(self, fd, in, iov, want);
            if (n <= 0)
                continue;
            taken += n;
            for (int i = 0; i < n; i++) {
                unsigned char *d = self->buffers[i];
                Py_ssize_t len = (Py_ssize_t)in[i].msg_len;
                const struct sockaddr *from = (const struct sockaddr *)&self->sources6[i];
                Pair *pair = &self->pairs[id / 2];
                Leg *to = NULL;
                int own = from->sa_family == AF_INET
                    && key_of((const struct sockaddr_in *)from) == pair->legs[id % 2].key;
                if (own && relay_from(self, id, d, len, now, &to)) {
                    ssize_t r;
                    Py_BEGIN_ALLOW_THREADS
                    r = sendto(to->fd, d, (size_t)len, 0, (const struct sockaddr *)&to->addr,
                               sizeof to->addr);
                    Py_END_ALLOW_THREADS
                    if (r < 0)
                        self->send_errors++;
                    self->relayed++;
                } else {
                    /* unusual from the leg: this and the rest to Python, in order; from
                       elsewhere: not the leg's at all (Python drops a stranger's packet),
                       so the pair stays lent and a stranger cannot take it back */
                    if (own)
                        pair->held = 1;
                    self->returned++;
                    if (hand_back(back, fd, d, len, from) < 0) {
                        Py_DECREF(back);
                        return NULL;
                    }
                }
            }
        }
    }
    return back;
}

static PyObject *RelayTable_fileno(RelayTable *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLong(self->epfd);
}

static PyObject *RelayTable_due(RelayTable *self, PyObject *arg)
{
    double now = PyFloat_AsDouble(arg);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    PyObject *due = PyList_New(0);
    if (due == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < self->npairs; i++) {
        Pair *p = &self->pairs[i];
        if (!p->used)
            continue;
        if (p->held || now - p->legs[0].relayed_at >= p->silent_after
                || now - p->legs[1].relayed_at >= p->silent_after) {
            PyObject *handle = PyLong_FromSsize_t(i + 1);
            if (handle == NULL || PyList_Append(due, handle) < 0) {
                Py_XDECREF(handle);
                Py_DECREF(due);
                return NULL;
            }
            Py_DECREF(handle);
        }
    }
    return due;
}

static PyObject *RelayTable_counters(RelayTable *self, PyObject *unused)
{
    (void)unused;
    return Py_BuildValue("{s:n,s:K,s:K,s:K}", "lent", self->lent, "relayed", self->relayed,
                         "returned", self->returned, "send_errors", self->send_errors);
}

static Py_ssize_t RelayTable_len(RelayTable *self)
{
    return self->lent;
}

static PyMethodDef RelayTable_methods[] = {
    {"lend", (PyCFunction)(void (*)(void))RelayTable_lend, METH_VARARGS | METH_KEYWORDS,
     "lend(a, b, silent_after[, fd_a, fd_b, codecs]) -> handle: relay the pair's usual "
     "packets here (with fds: read from and sent out of the legs' own sockets; with "
     "codecs ((codec, encoder, decoder) of each leg), converted between them)"},
    {"reclaim", (PyCFunction)RelayTable_reclaim, METH_O,
     "reclaim(handle) -> (a, b): the pair's legs, counters updated, no longer lent"},
    {"drain", (PyCFunction)RelayTable_drain, METH_VARARGS,
     "drain(limit, now) -> [(data, (host, port))]: read up to limit datagrams, relay the "
     "usual packets of lent pairs, return the rest in order"},
    {"poll", (PyCFunction)RelayTable_poll, METH_VARARGS,
     "poll(limit, now) -> [(fd, data, (host, port))]: read the lent legs' own sockets "
     "that are ready, relay the usual packets, return the rest in order"},
    {"fileno", (PyCFunction)RelayTable_fileno, METH_NOARGS,
     "fileno() -> the epoll descriptor of the lent legs' own sockets (for the reactor)"},
    {"due", (PyCFunction)RelayTable_due, METH_O,
     "due(now) -> [handle]: pairs held, or quiet in either direction for silent_after"},
    {"counters", (PyCFunction)RelayTable_counters, METH_NOARGS,
     "counters() -> dict: pairs lent, packets relayed and returned, failed sends"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods RelayTable_as_sequence = {
    .sq_length = (lenfunc)RelayTable_len,
};

static PyTypeObject RelayTableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "confserver.adapters.media.fastrelay.RelayTable",
    .tp_doc = "Relayed pairs whose usual packets are moved in C (see the module).",
    .tp_basicsize = sizeof(RelayTable),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)RelayTable_init,
    .tp_dealloc = (destructor)RelayTable_dealloc,
    .tp_methods = RelayTable_methods,
    .tp_as_sequence = &RelayTable_as_sequence,
};

/* G.711 as the compiled relay converts it (for tests to hold against g711.py) */
static PyObject *g711_tables(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return Py_BuildValue("(y#y#y#y#)", (const char *)ulaw_decode, (Py_ssize_t)sizeof ulaw_decode,
                         (const char *)alaw_decode, (Py_ssize_t)sizeof alaw_decode,
                         (const char *)ulaw_encode, (Py_ssize_t)sizeof ulaw_encode,
                         (const char *)alaw_encode, (Py_ssize_t)sizeof alaw_encode);
}

static PyMethodDef module_functions[] = {
    {"g711_tables", g711_tables, METH_NOARGS,
     "g711_tables() -> (ulaw_decode, alaw_decode, ulaw_encode, alaw_encode): the "
     "conversion tables (decoding: native int16 by code; encoding: code by sample + 32768)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fastrelay_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "confserver.adapters.media.fastrelay",
    .m_doc = "The usual packet of a relayed pair, moved in C (see relay_offload.py).",
    .m_size = -1,
    .m_methods = module_functions,
};

PyMODINIT_FUNC PyInit_fastrelay(void)
{
    build_g711_tables();
    if (PyType_Ready(&RelayTableType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&fastrelay_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "RelayTable", (PyObject *)&RelayTableType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "BATCH", BATCH) < 0
            || PyModule_AddIntConstant(m, "CODEC_UNTOUCHED", CODEC_UNTOUCHED) < 0
            || PyModule_AddIntConstant(m, "CODEC_PCMU", CODEC_PCMU) < 0
            || PyModule_AddIntConstant(m, "CODEC_PCMA", CODEC_PCMA) < 0
            || PyModule_AddIntConstant(m, "CODEC_G722_8K", CODEC_G722_8K) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
