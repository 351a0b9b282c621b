/* The per-update loops of the hot path, in C: a venue's level changes checked and converted, a book's
 * levels set from them, a batch of trades checked and made events, what they do to a bar, their sizes
 * summed exactly, a frame's UTC time read, restated trades left out, a book side's levels kept sorted
 * (Levels), the plain
 * WebSocket messages of a socket read split out. Each has a pure-Python twin that
 * does the same (tickerterm/core/native.py says which one runs); tests/test_native.py checks they agree
 * on every input, bad ones included, and that every reference taken is given back.
 *
 * Why C here and nowhere else: per book update the pure path makes some fifteen C-API calls from
 * bytecode (attributes, str.strip twice, float() twice, a tuple, dict and set operations, a heap push);
 * the interpreter's dispatch around them costs more than the calls. Measured in bench/README.md.
 *
 * Everything here handles untrusted text: lengths are checked before anything is read, only ASCII digits
 * and one point are taken, and every failure raises (ValueError/TypeError/KeyError), never guesses.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>

#define API 14 /* tickerterm/core/native.py takes this module only at this version */

static PyObject *str_bid; /* "bid" */

/* Reading a field of many objects of one type (msgspec structs, slotted dataclasses): where the type's
 * attribute is a plain slot (a member descriptor holding an object, and the type's attribute lookup is
 * the generic one), the slot is read at its offset, as the descriptor itself would read it; any other
 * object or type goes through getattr. */
typedef struct {
    PyTypeObject *type; /* NULL: use getattr */
    Py_ssize_t offset;
} Field;

static void
field_init(Field *f, PyTypeObject *type, PyObject *name)
{
    f->type = NULL;
    if (type->tp_getattro != PyObject_GenericGetAttr) {
        return;
    }
    PyObject *descr = PyObject_GetAttr((PyObject *)type, name);
    if (descr == NULL) {
        PyErr_Clear();
        return;
    }
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == T_OBJECT_EX && !(member->flags & READ_RESTRICTED)) {
            f->type = type;
            f->offset = member->offset;
        }
    }
    Py_DECREF(descr);
}

/* item.<name>, a new reference (NULL with an exception set) */
static inline PyObject *
field_get(Field *f, PyObject *item, PyObject *name)
{
    if (Py_TYPE(item) == f->type) {
        PyObject *value = *(PyObject **)((char *)item + f->offset);
        if (value != NULL) {
            Py_INCREF(value);
            return value;
        }
    }
    return PyObject_GetAttr(item, name); /* and the AttributeError of an unset slot */
}

/* The common start of the loops below: the argument count, a size argument, the first argument as a
 * list or tuple (its items and count; the caller releases the sequence). */
static int
arity(const char *name, Py_ssize_t nargs, Py_ssize_t want)
{
    if (nargs == want) return 1;
    PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments", name, want);
    return 0;
}

static int
size_arg(PyObject *obj, Py_ssize_t *out)
{
    *out = PyLong_AsSsize_t(obj);
    return !(*out == -1 && PyErr_Occurred());
}

static PyObject *
fast_items(PyObject *obj, const char *what, Py_ssize_t *n, PyObject ***items)
{
    PyObject *seq = PySequence_Fast(obj, what);
    if (seq != NULL) {
        *n = PySequence_Fast_GET_SIZE(seq);
        *items = PySequence_Fast_ITEMS(seq);
    }
    return seq;
}

/* KeyError(key), as a dict lookup raises it (a key that is None or a tuple is not taken for the
 * exception's arguments) */
static void
key_error(PyObject *key)
{
    PyObject *args = PyTuple_Pack(1, key);
    if (args != NULL) {
        PyErr_SetObject(PyExc_KeyError, args);
        Py_DECREF(args);
    }
}

/* Plain decimal text, read once: where its characters are, and its digits as an integer m (leading
 * zeros dropped) with the count of digits after the point, exact when there are at most 18 significant
 * digits (what m holds). */
typedef struct {
    const char *s;
    Py_ssize_t n;
    unsigned long long m;
    int fraction;
    int exact;
} Dec;

/* Plain decimal text: 1..max_len ASCII digits with at most one point and at least one digit. 1 and *d
 * filled when it is; 0 when it is not; -1 (TypeError set) for anything but a string. */
static int
plain_bytes(const char *s, Py_ssize_t n, Py_ssize_t max_len, Dec *d)
{
    if (n == 0 || n > max_len) {
        return 0;
    }
    unsigned long long m = 0;
    int points = 0, digits = 0, significant = 0, fraction = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            digits++;
            if (fraction >= 0) fraction++;
            if (m == 0 && c == '0') continue; /* leading zeros add nothing */
            if (++significant <= 18) m = m * 10 + (unsigned long long)(c - '0');
        }
        else if (c == '.') {
            points++;
            fraction = 0;
        }
        else {
            return 0;
        }
    }
    if (points > 1 || digits == 0) {
        return 0;
    }
    d->s = s;
    d->n = n;
    d->m = m;
    d->fraction = fraction < 0 ? 0 : fraction;
    d->exact = significant <= 18;
    return 1;
}

/* Plain decimal text: 1..max_len ASCII digits with at most one point and at least one digit. 1 and *d
 * filled when it is; 0 when it is not; -1 (TypeError set) for anything but a string. */
static int
plain_decimal(PyObject *text, Py_ssize_t max_len, Dec *d)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "expected a decimal string, got %.50s", Py_TYPE(text)->tp_name);
        return -1;
    }
    if (!PyUnicode_IS_ASCII(text)) {
        return 0;
    }
    return plain_bytes((const char *)PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text), max_len, d);
}

static PyObject *
head(PyObject *text)
{
    if (PyUnicode_Check(text) && PyUnicode_GET_LENGTH(text) > 20) {
        return PyUnicode_Substring(text, 0, 20);
    }
    Py_INCREF(text);
    return text;
}

static void
not_plain(PyObject *price, PyObject *size)
{
    PyObject *p = head(price);
    PyObject *q = p ? head(size) : NULL;
    if (q) {
        PyErr_Format(PyExc_ValueError, "not plain decimal text: %R / %R", p, q);
    }
    Py_XDECREF(p);
    Py_XDECREF(q);
}

static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The float of text already known to be plain decimal: the same correctly rounded value as float().
 * Prices and sizes are short, so most take the exact fast path: when the digits make an integer m below
 * 2**53 and there are f <= 22 digits after the point, m and 10**f are both exact doubles and one IEEE
 * division rounds m / 10**f correctly (Clinger's fast path). Anything else goes to CPython's own
 * correctly rounded conversion, the one float() uses (about 200 ns on long text). */
static PyObject *
to_float(const Dec *d)
{
    if (d->exact && d->m < (1ULL << 53) && d->fraction <= 22) {
        return PyFloat_FromDouble((double)d->m / POW10[d->fraction]);
    }
    char *end = NULL;
    double v = PyOS_string_to_double(d->s, &end, NULL);
    if (v == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    if (end != d->s + d->n || !isfinite(v)) {
        PyErr_SetString(PyExc_ValueError, "not a finite number");
        return NULL;
    }
    return PyFloat_FromDouble(v);
}

PyDoc_STRVAR(changes_doc,
"changes(items, sides, side_attr, price_attr, size_attr, max_len, /) -> list\n\n"
"One (side, price, size, price value, size value) tuple per item, in order: the side is\n"
"sides[item.<side_attr>] (KeyError if it is not there), price and size are the item's text as it\n"
"came, checked to be plain decimal text of at most max_len characters (ValueError otherwise).");

static PyObject *
changes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!arity("changes", nargs, 6)) return NULL;
    PyObject *sides = args[1], *side_attr = args[2], *price_attr = args[3], *size_attr = args[4];
    if (!PyDict_Check(sides)) {
        PyErr_SetString(PyExc_TypeError, "sides must be a dict");
        return NULL;
    }
    Py_ssize_t max_len;
    if (!size_arg(args[5], &max_len)) return NULL;
    Py_ssize_t n;
    PyObject **items;
    PyObject *seq = fast_items(args[0], "items must be a sequence", &n, &items);
    if (seq == NULL) return NULL;
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    Field side_f = {NULL, 0}, price_f = {NULL, 0}, size_f = {NULL, 0};
    if (n) {
        field_init(&side_f, Py_TYPE(items[0]), side_attr);
        field_init(&price_f, Py_TYPE(items[0]), price_attr);
        field_init(&size_f, Py_TYPE(items[0]), size_attr);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = items[i];
        PyObject *side = NULL, *price = NULL, *size = NULL, *p = NULL, *q = NULL, *change = NULL;
        PyObject *name = NULL;
        Dec pd, qd;
        int ok;

        side = field_get(&side_f, item, side_attr);
        if (side == NULL) goto fail;
        name = PyDict_GetItemWithError(sides, side);
        if (name == NULL) {
            if (!PyErr_Occurred()) key_error(side);
            goto fail;
        }
        Py_INCREF(name); /* owned from here: reading the fields below may run Python code */
        price = field_get(&price_f, item, price_attr);
        if (price == NULL) goto fail;
        size = field_get(&size_f, item, size_attr);
        if (size == NULL) goto fail;
        if (!PyUnicode_Check(price) || !PyUnicode_Check(size)) {
            PyErr_Format(PyExc_TypeError, "expected a decimal string, got %.50s",
                         Py_TYPE(PyUnicode_Check(price) ? size : price)->tp_name);
            goto fail;
        }
        ok = plain_decimal(price, max_len, &pd);
        if (ok == 1) ok = plain_decimal(size, max_len, &qd);
        if (ok < 0) goto fail;
        if (ok == 0) {
            not_plain(price, size);
            goto fail;
        }
        p = to_float(&pd);
        if (p == NULL) goto fail;
        q = to_float(&qd);
        if (q == NULL) goto fail;
        change = PyTuple_New(5);
        if (change == NULL) goto fail;
        PyTuple_SET_ITEM(change, 0, name); /* the tuple takes these references */
        PyTuple_SET_ITEM(change, 1, price);
        PyTuple_SET_ITEM(change, 2, size);
        PyTuple_SET_ITEM(change, 3, p);
        PyTuple_SET_ITEM(change, 4, q);
        if (PyUnicode_CheckExact(name) && PyUnicode_CheckExact(price) && PyUnicode_CheckExact(size)) {
            PyObject_GC_UnTrack(change); /* strings and floats only: no cycle can go through it */
        }
        PyList_SET_ITEM(out, i, change);
        Py_DECREF(side);
        continue;
    fail:
        Py_XDECREF(side);
        Py_XDECREF(name);
        Py_XDECREF(price);
        Py_XDECREF(size);
        Py_XDECREF(p);
        Py_XDECREF(q);
        Py_DECREF(out);
        Py_DECREF(seq);
        return NULL;
    }
    Py_DECREF(seq);
    return out;
}

PyDoc_STRVAR(trade_events_doc,
"trade_events(items, make, slots, venue, recv_ts, default_ts, names, sides, times, parse, max_len, /) -> list\n\n"
"A batch of a venue's trades made events, in order: make(venue, recv_ts, product, ts, trade_id, price,\n"
"size, side) for each item, its fields read by names (product, trade_id, price, size, side, time). The\n"
"side is sides[side] (KeyError if it is not there); price and size are checked to be plain decimal text\n"
"of at most max_len characters (TypeError/ValueError otherwise); the id is made a string; ts is the\n"
"time's value from the times cache, else parse(time) (kept in times, cleared past 256 entries), and\n"
"default_ts where the time is None or its value is. slots: None, or the names of make's eight slots in\n"
"its arguments' order when make is a type whose __init__ only sets them (each event is then made by\n"
"filling its slots, as that __init__ would).");

static PyObject *
trade_events(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!arity("trade_events", nargs, 11)) return NULL;
    PyObject *make = args[1], *slots = args[2], *venue = args[3], *recv_ts = args[4], *default_ts = args[5];
    PyObject *names = args[6], *sides = args[7], *times = args[8], *parse = args[9];
    if (!PyTuple_Check(names) || PyTuple_GET_SIZE(names) != 6 || !PyDict_Check(sides) || !PyDict_Check(times)) {
        PyErr_SetString(PyExc_TypeError, "trade_events(): names is a tuple of 6, sides and times dicts");
        return NULL;
    }
    Field made[8];
    if (slots != Py_None) {
        if (!PyType_Check(make) || !PyTuple_Check(slots) || PyTuple_GET_SIZE(slots) != 8) {
            PyErr_SetString(PyExc_TypeError, "trade_events(): slots are None or 8 names of make's slots");
            return NULL;
        }
        for (int k = 0; k < 8; k++) {
            field_init(&made[k], (PyTypeObject *)make, PyTuple_GET_ITEM(slots, k));
            if (made[k].type == NULL) {
                PyErr_Format(PyExc_TypeError, "trade_events(): %R is not a plain slot", PyTuple_GET_ITEM(slots, k));
                return NULL;
            }
        }
    }
    Py_ssize_t max_len;
    if (!size_arg(args[10], &max_len)) return NULL;
    Py_ssize_t n;
    PyObject **items;
    PyObject *seq = fast_items(args[0], "items must be a sequence", &n, &items);
    if (seq == NULL) return NULL;
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    Field f[6];
    for (int k = 0; k < 6; k++) {
        f[k].type = NULL;
        if (n) field_init(&f[k], Py_TYPE(items[0]), PyTuple_GET_ITEM(names, k));
    }
    PyObject *last_when = NULL, *last_ts = NULL; /* the previous trade's time text and value, owned */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v[6] = {NULL, NULL, NULL, NULL, NULL, NULL}; /* product, id, price, size, side, time */
        PyObject *side = NULL, *ts = NULL, *trade = NULL;
        Dec d;
        int ok = 1;
        for (int k = 0; k < 6 && ok; k++) {
            v[k] = field_get(&f[k], items[i], PyTuple_GET_ITEM(names, k));
            ok = v[k] != NULL;
        }
        if (!ok) goto fail;
        side = PyDict_GetItemWithError(sides, v[4]);
        if (side == NULL) {
            if (!PyErr_Occurred()) key_error(v[4]);
            goto fail;
        }
        Py_INCREF(side); /* owned: what follows may run Python code */
        if (!PyUnicode_Check(v[2]) || !PyUnicode_Check(v[3])) {
            PyErr_Format(PyExc_TypeError, "expected a decimal string, got %.50s",
                         Py_TYPE(PyUnicode_Check(v[2]) ? v[3] : v[2])->tp_name);
            goto fail;
        }
        ok = plain_decimal(v[2], max_len, &d);
        if (ok == 1) ok = plain_decimal(v[3], max_len, &d);
        if (ok < 0) goto fail;
        if (ok == 0) {
            not_plain(v[2], v[3]);
            goto fail;
        }
        if (!PyUnicode_CheckExact(v[1])) { /* a venue's numeric id, as text */
            Py_SETREF(v[1], PyObject_Str(v[1]));
            if (v[1] == NULL) goto fail;
        }
        PyObject *when = v[5];
        if (when == Py_None) {
            ts = default_ts;
            Py_INCREF(ts);
        }
        else if (last_when != NULL && (when == last_when || (PyUnicode_CheckExact(when) &&
                                                             PyUnicode_CheckExact(last_when) &&
                                                             PyUnicode_Compare(when, last_when) == 0))) {
            ts = last_ts; /* a batch's trades share their time text */
            Py_INCREF(ts);
        }
        else {
            ts = PyDict_GetItemWithError(times, when);
            if (ts != NULL && ts != Py_None) {
                Py_INCREF(ts);
            }
            else {
                if (PyErr_Occurred()) goto fail;
                ts = PyObject_CallOneArg(parse, when);
                if (ts == NULL) goto fail;
                if (PyDict_GET_SIZE(times) > 256) {
                    PyDict_Clear(times); /* a venue's times are many only in a replay: keep it small */
                }
                if (PyDict_SetItem(times, when, ts) < 0) goto fail;
            }
            if (ts == Py_None) {
                Py_SETREF(ts, Py_NewRef(default_ts));
            }
            Py_XSETREF(last_when, Py_NewRef(when));
            Py_XSETREF(last_ts, Py_NewRef(ts));
        }
        PyObject *call[8] = {venue, recv_ts, v[0], ts, v[1], v[2], v[3], side};
        if (slots == Py_None) {
            trade = PyObject_Vectorcall(make, call, 8, NULL);
            if (trade == NULL) goto fail;
        }
        else {
            PyTypeObject *type = (PyTypeObject *)make;
            trade = type->tp_alloc(type, 0);
            if (trade == NULL) goto fail;
            for (int k = 0; k < 8; k++) {
                *(PyObject **)((char *)trade + made[k].offset) = Py_NewRef(call[k]);
            }
        }
        PyList_SET_ITEM(out, i, trade);
        for (int k = 0; k < 6; k++) Py_DECREF(v[k]);
        Py_DECREF(side);
        Py_DECREF(ts);
        continue;
    fail:
        for (int k = 0; k < 6; k++) Py_XDECREF(v[k]);
        Py_XDECREF(side);
        Py_XDECREF(ts);
        Py_XDECREF(last_when);
        Py_XDECREF(last_ts);
        Py_DECREF(out);
        Py_DECREF(seq);
        return NULL;
    }
    Py_XDECREF(last_when);
    Py_XDECREF(last_ts);
    Py_DECREF(seq);
    return out;
}

PyDoc_STRVAR(bar_span_doc,
"bar_span(trades, /) -> (first, last, open, close, high, high_price, low, low_price) | None\n\n"
"What a batch of trades does to a bar, in one pass: the earliest and latest exch_ts, the price of the\n"
"first trade at the earliest and of the last at the latest, the highest and lowest price values and\n"
"the first trade's price at each. None when a time is not a float or a price is not plain decimal\n"
"text (the caller adds such trades one by one).");

static PyObject *str_exch_ts, *str_price;

static PyObject *
bar_span(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!arity("bar_span", nargs, 1)) return NULL;
    Py_ssize_t n;
    PyObject **items;
    PyObject *seq = fast_items(args[0], "trades must be a sequence", &n, &items);
    if (seq == NULL) return NULL;
    Field ts_f = {NULL, 0}, price_f = {NULL, 0};
    if (n) {
        field_init(&ts_f, Py_TYPE(items[0]), str_exch_ts);
        field_init(&price_f, Py_TYPE(items[0]), str_price);
    }
    double first = 0, last = 0, high = 0, low = 0;
    PyObject *open = NULL, *close = NULL, *high_p = NULL, *low_p = NULL, *price = NULL; /* owned */
    PyObject *out = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ts = field_get(&ts_f, items[i], str_exch_ts);
        if (ts == NULL) goto done;
        int is_float = PyFloat_CheckExact(ts);
        double t = is_float ? PyFloat_AS_DOUBLE(ts) : 0;
        Py_DECREF(ts);
        Py_XSETREF(price, field_get(&price_f, items[i], str_price));
        if (price == NULL) goto done;
        Dec d;
        int ok = PyUnicode_CheckExact(price) ? plain_decimal(price, 64, &d) : 0;
        if (ok < 0) goto done;
        if (!is_float || isnan(t) || !ok) {
            out = Py_NewRef(Py_None);
            goto done;
        }
        PyObject *v = to_float(&d);
        if (v == NULL) goto done;
        double p = PyFloat_AS_DOUBLE(v);
        Py_DECREF(v);
        if (i == 0 || t < first) {
            first = t;
            Py_XSETREF(open, Py_NewRef(price));
        }
        if (i == 0 || t >= last) { /* the last trade at the latest time closes; max()'s value (-0.0 before 0.0) */
            if (i == 0 || t > last) last = t;
            Py_XSETREF(close, Py_NewRef(price));
        }
        if (i == 0 || p > high) {
            high = p;
            Py_XSETREF(high_p, Py_NewRef(price));
        }
        if (i == 0 || p < low) {
            low = p;
            Py_XSETREF(low_p, Py_NewRef(price));
        }
    }
    out = n ? Py_BuildValue("(ddOOdOdO)", first, last, open, close, high, high_p, low, low_p) : Py_NewRef(Py_None);
done:
    Py_XDECREF(open);
    Py_XDECREF(close);
    Py_XDECREF(high_p);
    Py_XDECREF(low_p);
    Py_XDECREF(price);
    Py_DECREF(seq);
    return out;
}

PyDoc_STRVAR(decimal_parts_doc,
"decimal_parts(texts, /) -> list | None\n\n"
"The exact sum of plain decimal texts as [(f, hi, lo), ...]: for each count f of digits after the\n"
"point, the sum of those texts' digits as an integer, (hi << 64) | lo. None when a text is not plain\n"
"decimal text of at most 18 significant digits and 64 characters (the caller sums it another way).");

static PyObject *
decimal_parts(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!arity("decimal_parts", nargs, 1)) return NULL;
    Py_ssize_t n;
    PyObject **items;
    PyObject *seq = fast_items(args[0], "texts must be a sequence", &n, &items);
    if (seq == NULL) return NULL;
    /* per count of places, a 128-bit sum as two 64-bit halves (portable C: no __int128 on MSVC) */
    unsigned long long hi[65] = {0}, lo[65] = {0};
    char seen[65] = {0}; /* a sum of zeros keeps its places: 0.00 + 0.0 is 0.00 */
    for (Py_ssize_t i = 0; i < n; i++) {
        Dec d;
        if (!PyUnicode_Check(items[i]) || plain_decimal(items[i], 64, &d) != 1 || !d.exact) {
            Py_DECREF(seq);
            Py_RETURN_NONE; /* more than 18 significant digits: the caller sums Decimals */
        }
        unsigned long long m = d.m;
        int fraction = d.fraction;
        lo[fraction] += m; /* each m < 2**60: no list is long enough to overflow 128 bits */
        if (lo[fraction] < m) hi[fraction]++;
        seen[fraction] = 1;
    }
    Py_DECREF(seq);
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    for (int f = 0; f <= 64; f++) {
        if (!seen[f]) continue;
        PyObject *part = Py_BuildValue("(iKK)", f, hi[f], lo[f]);
        if (part == NULL || PyList_Append(out, part) < 0) {
            Py_XDECREF(part);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(part);
    }
    return out;
}

static int
digits_at(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil) */
static long long
days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - (int)(era * 400);
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

PyDoc_STRVAR(rfc3339_doc,
"rfc3339(text, /) -> float | None\n\n"
"UNIX seconds of a UTC time written YYYY-MM-DDTHH:MM:SS[.fraction]Z (1 to 9 digits of fraction,\n"
"microseconds kept, the rest cut), the value datetime.fromisoformat(text).timestamp() gives; None for\n"
"any other text, or a year outside 1685-2255 (the caller parses it the slow way).");

static PyObject *
rfc3339(PyObject *module, PyObject *text)
{
    if (!PyUnicode_Check(text) || !PyUnicode_IS_ASCII(text)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const char *s = (const char *)PyUnicode_DATA(text);
    int year, month, day, hour, minute, second, micro = 0;
    if (n < 20 || n > 30 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
        s[n - 1] != 'Z' || !digits_at(s, 4, &year) || !digits_at(s + 5, 2, &month) ||
        !digits_at(s + 8, 2, &day) || !digits_at(s + 11, 2, &hour) || !digits_at(s + 14, 2, &minute) ||
        !digits_at(s + 17, 2, &second)) {
        Py_RETURN_NONE;
    }
    if (n > 20) { /* a fraction: a point, 1 to 9 digits */
        Py_ssize_t places = n - 21;
        if (s[19] != '.' || places < 1 || places > 9) {
            Py_RETURN_NONE;
        }
        for (Py_ssize_t i = 0; i < 6; i++) {
            int d = 0;
            if (i < places) {
                char c = s[20 + i];
                if (c < '0' || c > '9') Py_RETURN_NONE;
                d = c - '0';
            }
            micro = micro * 10 + d;
        }
        for (Py_ssize_t i = 6; i < places; i++) {
            if (s[20 + i] < '0' || s[20 + i] > '9') Py_RETURN_NONE;
        }
    }
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (year < 1 || month < 1 || month > 12 || day < 1 ||
        day > month_days[month - 1] + (month == 2 && leap) || hour > 23 || minute > 59 || second > 59) {
        Py_RETURN_NONE; /* fromisoformat refuses it, and says why */
    }
    long long seconds = days_from_civil(year, month, day) * 86400LL + hour * 3600 + minute * 60 + second;
    /* as timedelta.total_seconds(): whole microseconds over 10**6 in one correctly rounded division,
     * which a double gives only while the count is exact in it (years 1685 to 2255) */
    long long total = seconds * 1000000LL + micro;
    if (total >= (1LL << 53) || total <= -(1LL << 53)) {
        Py_RETURN_NONE;
    }
    return PyFloat_FromDouble((double)total / 1e6);
}

static PyObject *str_venue, *str_product, *str_trade_id;

PyDoc_STRVAR(fresh_trades_doc,
"fresh_trades(trades, seen, limit, /) -> (kept, batches)\n\n"
"Store._trades' loop: the trades whose id was not seen lately (an empty id is always new), in order,\n"
"and the same grouped by (venue, product) in order of first appearance. seen maps (venue, product) to\n"
"(recent, older) sets of ids; a new id goes into recent, and when recent holds limit ids, older takes\n"
"them and recent starts empty.");

static PyObject *
fresh_trades(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!arity("fresh_trades", nargs, 3)) return NULL;
    PyObject *seen = args[1];
    if (!PyDict_Check(seen)) {
        PyErr_SetString(PyExc_TypeError, "seen must be a dict");
        return NULL;
    }
    Py_ssize_t limit;
    if (!size_arg(args[2], &limit)) return NULL;
    Py_ssize_t n;
    PyObject **items;
    PyObject *seq = fast_items(args[0], "trades must be a sequence", &n, &items);
    if (seq == NULL) return NULL;
    PyObject *kept = PyList_New(0), *batches = PyDict_New();
    PyObject *venue = NULL, *product = NULL; /* the run's, owned */
    PyObject *batch = NULL, *recent = NULL, *older = NULL; /* borrowed from batches / seen */
    Field venue_f = {NULL, 0}, product_f = {NULL, 0}, id_f = {NULL, 0};
    if (kept == NULL || batches == NULL) goto fail;
    if (n) {
        field_init(&venue_f, Py_TYPE(items[0]), str_venue);
        field_init(&product_f, Py_TYPE(items[0]), str_product);
        field_init(&id_f, Py_TYPE(items[0]), str_trade_id);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ev = items[i];
        PyObject *v = field_get(&venue_f, ev, str_venue);
        PyObject *p = v ? field_get(&product_f, ev, str_product) : NULL;
        if (p == NULL) {
            Py_XDECREF(v);
            goto fail;
        }
        int same = product != NULL && (p == product || PyObject_RichCompareBool(p, product, Py_EQ) == 1) &&
                   (v == venue || PyObject_RichCompareBool(v, venue, Py_EQ) == 1);
        if (PyErr_Occurred()) {
            Py_DECREF(v);
            Py_DECREF(p);
            goto fail;
        }
        if (!same) {
            Py_XSETREF(venue, v);
            Py_XSETREF(product, p);
            PyObject *key = PyTuple_Pack(2, venue, product);
            if (key == NULL) goto fail;
            batch = PyDict_GetItemWithError(batches, key);
            if (batch == NULL) {
                batch = PyErr_Occurred() ? NULL : PyList_New(0);
                if (batch == NULL || PyDict_SetItem(batches, key, batch) < 0) {
                    Py_XDECREF(batch);
                    Py_DECREF(key);
                    goto fail;
                }
                Py_DECREF(batch); /* the dict holds it */
            }
            PyObject *pair = PyDict_GetItemWithError(seen, key);
            if (pair == NULL) {
                if (PyErr_Occurred()) {
                    Py_DECREF(key);
                    goto fail;
                }
                pair = Py_BuildValue("(NN)", PySet_New(NULL), PySet_New(NULL));
                if (pair == NULL || PyDict_SetItem(seen, key, pair) < 0) {
                    Py_XDECREF(pair);
                    Py_DECREF(key);
                    goto fail;
                }
                Py_DECREF(pair);
            }
            Py_DECREF(key);
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyAnySet_Check(PyTuple_GET_ITEM(pair, 0)) ||
                !PyAnySet_Check(PyTuple_GET_ITEM(pair, 1))) {
                PyErr_SetString(PyExc_TypeError, "seen holds (recent, older) pairs of sets");
                goto fail;
            }
            recent = PyTuple_GET_ITEM(pair, 0);
            older = PyTuple_GET_ITEM(pair, 1);
        }
        else {
            Py_DECREF(v);
            Py_DECREF(p);
        }
        PyObject *trade_id = field_get(&id_f, ev, str_trade_id);
        if (trade_id == NULL) goto fail;
        int has_id = PyObject_IsTrue(trade_id);
        if (has_id > 0) {
            int dup = PySet_Contains(older, trade_id);
            if (dup == 0) { /* one lookup in recent: adding an id it holds leaves its size */
                Py_ssize_t had = PySet_GET_SIZE(recent);
                dup = PySet_Add(recent, trade_id) < 0 ? -1 : PySet_GET_SIZE(recent) == had;
            }
            if (dup == 0 && PySet_GET_SIZE(recent) >= limit) { /* keep the last 2-4 tape lengths of ids */
                PyObject *done = PySet_Clear(older) < 0 ? NULL : PyObject_CallMethod(older, "update", "(O)", recent);
                if (done == NULL || PySet_Clear(recent) < 0) {
                    dup = -1;
                }
                Py_XDECREF(done);
            }
            Py_DECREF(trade_id);
            if (dup < 0) goto fail;
            if (dup) continue;
        }
        else {
            Py_DECREF(trade_id);
            if (has_id < 0) goto fail;
        }
        if (PyList_Append(batch, ev) < 0 || PyList_Append(kept, ev) < 0) goto fail;
    }
    Py_XDECREF(venue);
    Py_XDECREF(product);
    Py_DECREF(seq);
    return Py_BuildValue("(NN)", kept, batches);
fail:
    Py_XDECREF(venue);
    Py_XDECREF(product);
    Py_XDECREF(kept);
    Py_XDECREF(batches);
    Py_DECREF(seq);
    return NULL;
}

/* --- Levels: one side of a book, its levels in C ------------------------------------------------------
 *
 * A side's levels best first in sorted blocks: each block holds up to LEVEL_BLOCK levels as their sort
 * rank (the price for asks, minus the price for bids, so the best is the lowest rank everywhere), the
 * price's and the size's text. A level is found by two binary searches over contiguous doubles (the
 * blocks' last ranks, then one block), set or removed by moving at most one block's entries; a full
 * block splits in two, a block under a quarter full merges into a neighbour that can take it, so a side
 * of n levels holds between n / LEVEL_BLOCK and about 8n / LEVEL_BLOCK + 1 blocks. Nothing is hashed, no
 * tuple is made per level (only for what is read), and the best levels are the first ones: no heap of
 * gone prices. The texts are exact strings: no cycle can go through a side, so it is not tracked by the
 * collector. */

#define LEVEL_BLOCK 64

typedef struct {
    Py_ssize_t n;
    double rank[LEVEL_BLOCK];
    PyObject *price[LEVEL_BLOCK];
    PyObject *size[LEVEL_BLOCK];
} Block;

typedef struct {
    PyObject_HEAD
    int bids; /* the best is the highest price */
    Py_ssize_t count, nblocks, room;
    Block **blocks;
} Levels;

static PyTypeObject LevelsType;

/* a key's rank (0, or -1 with TypeError/ValueError/OverflowError set) */
static int
rank_of(Levels *L, PyObject *key, double *rank)
{
    if (!PyFloat_Check(key) && !PyLong_Check(key)) {
        PyErr_Format(PyExc_TypeError, "a price's key is a number, not %.50s", Py_TYPE(key)->tp_name);
        return -1;
    }
    double k = PyFloat_AsDouble(key);
    if (k == -1.0 && PyErr_Occurred()) return -1;
    if (isnan(k)) {
        PyErr_SetString(PyExc_ValueError, "a price's key is not a number (NaN)");
        return -1;
    }
    *rank = L->bids ? -k : k;
    return 0;
}

static inline PyObject *
key_of(Levels *L, double rank)
{
    return PyFloat_FromDouble(L->bids ? -rank : rank);
}

/* where rank is or would go: 1 found at (*b, *i), 0 not there (insert at (*b, *i)) */
static int
locate(Levels *L, double rank, Py_ssize_t *b, Py_ssize_t *i)
{
    if (L->nblocks == 0) {
        *b = *i = 0;
        return 0;
    }
    Py_ssize_t lo = 0, hi = L->nblocks - 1; /* the first block whose last rank is >= rank, else the last */
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        Block *blk = L->blocks[mid];
        if (blk->rank[blk->n - 1] < rank) lo = mid + 1;
        else hi = mid;
    }
    Block *blk = L->blocks[lo];
    Py_ssize_t a = 0, z = blk->n;
    while (a < z) {
        Py_ssize_t mid = (a + z) / 2;
        if (blk->rank[mid] < rank) a = mid + 1;
        else z = mid;
    }
    *b = lo;
    *i = a;
    return a < blk->n && blk->rank[a] == rank;
}

static int
room_for_block(Levels *L)
{
    if (L->nblocks < L->room) return 0;
    Py_ssize_t room = L->room ? 2 * L->room : 8;
    Block **grown = PyMem_Realloc(L->blocks, room * sizeof(Block *));
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    L->blocks = grown;
    L->room = room;
    return 0;
}

static void
shift(Block *blk, Py_ssize_t from, Py_ssize_t to, Py_ssize_t count)
{
    memmove(&blk->rank[to], &blk->rank[from], count * sizeof(double));
    memmove(&blk->price[to], &blk->price[from], count * sizeof(PyObject *));
    memmove(&blk->size[to], &blk->size[from], count * sizeof(PyObject *));
}

static void
copy_into(Block *dst, Py_ssize_t at, Block *src, Py_ssize_t from, Py_ssize_t count)
{
    memcpy(&dst->rank[at], &src->rank[from], count * sizeof(double));
    memcpy(&dst->price[at], &src->price[from], count * sizeof(PyObject *));
    memcpy(&dst->size[at], &src->size[from], count * sizeof(PyObject *));
}

/* set a level (price and size: exact strings, borrowed): 0 set, 1 not kept (the side holds cap levels
 * and not this one), -1 error */
static int
levels_put(Levels *L, double rank, PyObject *price, PyObject *size, Py_ssize_t cap)
{
    Py_ssize_t b, i;
    if (locate(L, rank, &b, &i)) {
        Block *blk = L->blocks[b];
        Py_INCREF(price);
        Py_INCREF(size);
        Py_SETREF(blk->price[i], price);
        Py_SETREF(blk->size[i], size);
        return 0;
    }
    if (L->count >= cap) return 1;
    if (L->nblocks == 0) {
        if (room_for_block(L) < 0) return -1;
        Block *first = PyMem_Malloc(sizeof(Block));
        if (first == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        first->n = 0;
        L->blocks[0] = first;
        L->nblocks = 1;
    }
    Block *blk = L->blocks[b];
    if (blk->n == LEVEL_BLOCK) { /* split: the upper half to a new block after it */
        if (room_for_block(L) < 0) return -1;
        Block *upper = PyMem_Malloc(sizeof(Block));
        if (upper == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        Py_ssize_t half = LEVEL_BLOCK / 2;
        copy_into(upper, 0, blk, half, LEVEL_BLOCK - half);
        upper->n = LEVEL_BLOCK - half;
        blk->n = half;
        memmove(&L->blocks[b + 2], &L->blocks[b + 1], (L->nblocks - b - 1) * sizeof(Block *));
        L->blocks[b + 1] = upper;
        L->nblocks++;
        if (i > half) {
            blk = upper;
            i -= half;
        }
    }
    shift(blk, i, i + 1, blk->n - i);
    blk->rank[i] = rank;
    blk->price[i] = Py_NewRef(price);
    blk->size[i] = Py_NewRef(size);
    blk->n++;
    L->count++;
    return 0;
}

static void
drop_block(Levels *L, Py_ssize_t b)
{
    PyMem_Free(L->blocks[b]);
    memmove(&L->blocks[b], &L->blocks[b + 1], (L->nblocks - b - 1) * sizeof(Block *));
    L->nblocks--;
}

/* remove a level if the side has it */
static void
levels_remove(Levels *L, double rank)
{
    Py_ssize_t b, i;
    if (!locate(L, rank, &b, &i)) return;
    Block *blk = L->blocks[b];
    PyObject *price = blk->price[i], *size = blk->size[i];
    shift(blk, i + 1, i, blk->n - i - 1);
    blk->n--;
    L->count--;
    if (blk->n == 0) {
        drop_block(L, b);
    }
    else if (blk->n < LEVEL_BLOCK / 4) { /* nearly empty: into a neighbour that has room for it */
        if (b + 1 < L->nblocks && blk->n + L->blocks[b + 1]->n <= LEVEL_BLOCK) {
            Block *next = L->blocks[b + 1];
            copy_into(blk, blk->n, next, 0, next->n);
            blk->n += next->n;
            drop_block(L, b + 1);
        }
        else if (b > 0 && blk->n + L->blocks[b - 1]->n <= LEVEL_BLOCK) {
            Block *prev = L->blocks[b - 1];
            copy_into(prev, prev->n, blk, 0, blk->n);
            prev->n += blk->n;
            drop_block(L, b);
        }
    }
    Py_DECREF(price); /* strings: freeing them runs no Python code */
    Py_DECREF(size);
}

static void
levels_clear(Levels *L)
{
    for (Py_ssize_t b = 0; b < L->nblocks; b++) {
        Block *blk = L->blocks[b];
        for (Py_ssize_t i = 0; i < blk->n; i++) {
            Py_DECREF(blk->price[i]);
            Py_DECREF(blk->size[i]);
        }
        PyMem_Free(blk);
    }
    L->nblocks = 0;
    L->count = 0;
}

static int
texts(PyObject *price, PyObject *size)
{
    if (PyUnicode_CheckExact(price) && PyUnicode_CheckExact(size)) return 0;
    PyErr_SetString(PyExc_TypeError, "a level's price and size are strings");
    return -1;
}

static PyObject *
Levels_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"bids", NULL};
    int bids;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "p:Levels", names, &bids)) return NULL;
    Levels *L = (Levels *)type->tp_alloc(type, 0);
    if (L == NULL) return NULL;
    L->bids = bids;
    return (PyObject *)L;
}

static void
Levels_dealloc(Levels *L)
{
    levels_clear(L);
    PyMem_Free(L->blocks);
    Py_TYPE(L)->tp_free((PyObject *)L);
}

static Py_ssize_t
Levels_len(Levels *L)
{
    return L->count;
}

/* the level at (b, i) as (price, size) */
static PyObject *
level_at(Levels *L, Py_ssize_t b, Py_ssize_t i)
{
    Block *blk = L->blocks[b];
    PyObject *level = PyTuple_Pack(2, blk->price[i], blk->size[i]);
    if (level != NULL) PyObject_GC_UnTrack(level); /* two strings */
    return level;
}

static PyObject *
Levels_getitem(Levels *L, PyObject *key)
{
    double rank;
    Py_ssize_t b, i;
    if (rank_of(L, key, &rank) < 0) return NULL;
    if (!locate(L, rank, &b, &i)) {
        key_error(key);
        return NULL;
    }
    return level_at(L, b, i);
}

static int
Levels_contains(Levels *L, PyObject *key)
{
    double rank;
    Py_ssize_t b, i;
    if (rank_of(L, key, &rank) < 0) return -1;
    return locate(L, rank, &b, &i);
}

/* every level best first: 0 keys, 1 (price, size), 2 (key, (price, size)); at most n */
static PyObject *
listed(Levels *L, int what, Py_ssize_t n)
{
    if (n > L->count) n = L->count;
    if (n < 0) n = 0;
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    Py_ssize_t k = 0;
    for (Py_ssize_t b = 0; b < L->nblocks && k < n; b++) {
        for (Py_ssize_t i = 0; i < L->blocks[b]->n && k < n; i++, k++) {
            PyObject *item;
            if (what == 1) {
                item = level_at(L, b, i);
            }
            else {
                PyObject *key = key_of(L, L->blocks[b]->rank[i]);
                item = key;
                if (what == 2 && key != NULL) {
                    PyObject *level = level_at(L, b, i);
                    item = level ? PyTuple_Pack(2, key, level) : NULL;
                    Py_XDECREF(level);
                    Py_DECREF(key);
                }
            }
            if (item == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            PyList_SET_ITEM(out, k, item);
        }
    }
    return out;
}

static PyObject *
Levels_iter(Levels *L)
{
    PyObject *keys = listed(L, 0, L->count);
    if (keys == NULL) return NULL;
    PyObject *it = PyObject_GetIter(keys);
    Py_DECREF(keys);
    return it;
}

static PyObject *
Levels_keys(Levels *L, PyObject *unused)
{
    return listed(L, 0, L->count);
}

static PyObject *
Levels_values(Levels *L, PyObject *unused)
{
    return listed(L, 1, L->count);
}

static PyObject *
Levels_items(Levels *L, PyObject *unused)
{
    return listed(L, 2, L->count);
}

static PyObject *
Levels_top(Levels *L, PyObject *arg)
{
    Py_ssize_t n = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred()) return NULL;
    return listed(L, 1, n);
}

static PyObject *
Levels_best(Levels *L, PyObject *unused)
{
    if (L->count == 0) Py_RETURN_NONE;
    return key_of(L, L->blocks[0]->rank[0]);
}

static PyObject *
Levels_get(Levels *L, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(key, default=None)");
        return NULL;
    }
    double rank;
    Py_ssize_t b, i;
    if (rank_of(L, args[0], &rank) < 0) return NULL;
    if (locate(L, rank, &b, &i)) return level_at(L, b, i);
    return Py_NewRef(nargs == 2 ? args[1] : Py_None);
}

static int
by_rank(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    double rank;
    PyObject *price, *size;
} Entry;

static PyObject *
Levels_fill(Levels *L, PyObject *levels)
{
    if (!PyDict_Check(levels)) {
        PyErr_SetString(PyExc_TypeError, "fill(levels): a dict of key -> (price, size)");
        return NULL;
    }
    Py_ssize_t n = PyDict_GET_SIZE(levels), k = 0, pos = 0;
    Entry *entries = PyMem_Malloc((n ? n : 1) * sizeof(Entry));
    if (entries == NULL) return PyErr_NoMemory();
    PyObject *key, *value;
    while (PyDict_Next(levels, &pos, &key, &value)) {
        if (!PyTuple_Check(value) || PyTuple_GET_SIZE(value) != 2) {
            PyErr_SetString(PyExc_TypeError, "a level is a (price, size) pair");
            goto fail;
        }
        if (rank_of(L, key, &entries[k].rank) < 0 || texts(PyTuple_GET_ITEM(value, 0), PyTuple_GET_ITEM(value, 1)) < 0) {
            goto fail;
        }
        entries[k].price = PyTuple_GET_ITEM(value, 0);
        entries[k].size = PyTuple_GET_ITEM(value, 1);
        k++;
    }
    qsort(entries, k, sizeof(Entry), by_rank); /* equal keys cannot both be in a dict */
    levels_clear(L);
    Py_ssize_t per = LEVEL_BLOCK * 3 / 4; /* room left in each for what comes next */
    for (Py_ssize_t at = 0; at < k; at += per) {
        if (room_for_block(L) < 0) goto fail;
        Block *blk = PyMem_Malloc(sizeof(Block));
        if (blk == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        blk->n = at + per <= k ? per : k - at;
        for (Py_ssize_t i = 0; i < blk->n; i++) {
            blk->rank[i] = entries[at + i].rank;
            blk->price[i] = Py_NewRef(entries[at + i].price);
            blk->size[i] = Py_NewRef(entries[at + i].size);
        }
        L->blocks[L->nblocks++] = blk;
        L->count += blk->n;
    }
    PyMem_Free(entries);
    Py_RETURN_NONE;
fail:
    PyMem_Free(entries);
    return NULL;
}

static PyObject *
Levels_put(Levels *L, PyObject *const *args, Py_ssize_t nargs)
{
    double rank;
    Py_ssize_t cap;
    if (!arity("put", nargs, 4) || rank_of(L, args[0], &rank) < 0 || texts(args[1], args[2]) < 0 ||
        !size_arg(args[3], &cap)) {
        return NULL;
    }
    int kept = levels_put(L, rank, args[1], args[2], cap);
    return kept < 0 ? NULL : PyBool_FromLong(kept == 0);
}

static PyObject *
Levels_remove(Levels *L, PyObject *key)
{
    double rank;
    if (rank_of(L, key, &rank) < 0) return NULL;
    levels_remove(L, rank);
    Py_RETURN_NONE;
}

static PyObject *
Levels_clear_(Levels *L, PyObject *unused)
{
    levels_clear(L);
    Py_RETURN_NONE;
}

static PyObject *
Levels_blocks(Levels *L, PyObject *unused)
{
    return PyLong_FromSsize_t(L->nblocks);
}

static PyObject *
Levels_sizeof(Levels *L, PyObject *unused)
{
    return PyLong_FromSsize_t(sizeof(Levels) + L->room * sizeof(Block *) + L->nblocks * sizeof(Block));
}

static PyMethodDef Levels_methods[] = {
    {"best", (PyCFunction)Levels_best, METH_NOARGS, "the best price's key, or None when the side is empty"},
    {"top", (PyCFunction)Levels_top, METH_O, "top(n): the best n levels as (price, size), best first"},
    {"get", (PyCFunction)(void (*)(void))Levels_get, METH_FASTCALL, "get(key, default=None)"},
    {"keys", (PyCFunction)Levels_keys, METH_NOARGS, "every price's key, best first"},
    {"values", (PyCFunction)Levels_values, METH_NOARGS, "every level as (price, size), best first"},
    {"items", (PyCFunction)Levels_items, METH_NOARGS, "every (key, (price, size)), best first"},
    {"put", (PyCFunction)(void (*)(void))Levels_put, METH_FASTCALL,
     "put(key, price, size, cap) -> bool: set a level; False when not kept (cap levels held, not this one)"},
    {"remove", (PyCFunction)Levels_remove, METH_O, "remove(key): the level gone, if the side has it"},
    {"fill", (PyCFunction)Levels_fill, METH_O, "fill(levels): the side made these levels (a dict)"},
    {"clear", (PyCFunction)Levels_clear_, METH_NOARGS, "no level left"},
    {"blocks", (PyCFunction)Levels_blocks, METH_NOARGS, "how many blocks hold the levels (for tests)"},
    {"__sizeof__", (PyCFunction)Levels_sizeof, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMappingMethods Levels_mapping = {(lenfunc)Levels_len, (binaryfunc)Levels_getitem, NULL};
static PySequenceMethods Levels_sequence = {.sq_length = (lenfunc)Levels_len,
                                            .sq_contains = (objobjproc)Levels_contains};

static PyTypeObject LevelsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tickerterm.core._native.Levels",
    .tp_basicsize = sizeof(Levels),
    .tp_dealloc = (destructor)Levels_dealloc,
    .tp_as_mapping = &Levels_mapping,
    .tp_as_sequence = &Levels_sequence,
    .tp_iter = (getiterfunc)Levels_iter,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PyDoc_STR("Levels(bids): one side of a book, its levels best first (see _native.c)"),
    .tp_methods = Levels_methods,
    .tp_new = Levels_new,
};

PyDoc_STRVAR(apply_levels_doc,
"apply_levels(changes, bids, asks, cap, /) -> int\n\n"
"OrderBook.apply_changes' loop: each (side, price, size, key, value) sets or removes a level of bids or\n"
"asks (Levels). Bit 1 of the result: a new level was not kept because its side already held cap levels;\n"
"bit 2: a level was set at or through the other side's best price, so the book may have crossed.");

static PyObject *
apply_levels(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!arity("apply_levels", nargs, 4)) return NULL;
    if (!Py_IS_TYPE(args[1], &LevelsType) || !Py_IS_TYPE(args[2], &LevelsType)) {
        PyErr_SetString(PyExc_TypeError, "apply_levels(): bids and asks are Levels");
        return NULL;
    }
    Levels *bids = (Levels *)args[1], *asks = (Levels *)args[2];
    Py_ssize_t cap;
    if (!size_arg(args[3], &cap)) return NULL;
    Py_ssize_t n;
    PyObject **items;
    PyObject *seq = fast_items(args[0], "changes must be a sequence", &n, &items);
    if (seq == NULL) return NULL;
    int overflow = 0, reach = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *c = PySequence_Fast(items[i], "a change must be a sequence");
        if (c == NULL) goto fail;
        if (PySequence_Fast_GET_SIZE(c) != 5) {
            PyErr_SetString(PyExc_ValueError, "a change has five items");
            Py_DECREF(c);
            goto fail;
        }
        PyObject **f = PySequence_Fast_ITEMS(c);
        PyObject *side = f[0], *value = f[4];
        int is_bid = side == str_bid;
        if (!is_bid) {
            is_bid = PyObject_RichCompareBool(side, str_bid, Py_EQ);
            if (is_bid < 0) {
                Py_DECREF(c);
                goto fail;
            }
        }
        Levels *levels = is_bid ? bids : asks, *other = is_bid ? asks : bids;
        int zero;
        if (PyFloat_CheckExact(value)) {
            zero = PyFloat_AS_DOUBLE(value) == 0.0;
        }
        else {
            PyObject *z = PyFloat_FromDouble(0.0);
            zero = z ? PyObject_RichCompareBool(value, z, Py_EQ) : -1;
            Py_XDECREF(z);
        }
        double rank;
        if (zero < 0 || rank_of(levels, f[3], &rank) < 0) {
            Py_DECREF(c);
            goto fail;
        }
        if (zero) {
            levels_remove(levels, rank);
            Py_DECREF(c);
            continue;
        }
        int kept = texts(f[1], f[2]) < 0 ? -1 : levels_put(levels, rank, f[1], f[2], cap);
        Py_DECREF(c);
        if (kept < 0) goto fail;
        if (kept == 1) {
            overflow = 1; /* past any real book: not kept, and said so */
            continue;
        }
        if (!reach && other->count) { /* at or through the other side's best: the book may have crossed */
            reach = -rank >= other->blocks[0]->rank[0]; /* ranks: each side's own order, so the other's negated */
        }
    }
    Py_DECREF(seq);
    return PyLong_FromLong(overflow | (reach << 1));
fail:
    Py_DECREF(seq);
    return NULL;
}

/* --- level_frame: a venue's level-update frame read straight from its JSON text ----------------------
 *
 * A strict reader for one shape: an object whose events are objects whose updates are objects of
 * side, price and size strings (Coinbase Advanced Trade's l2_data). It answers only when it has no
 * doubt, and None otherwise, for the venue's general decoder (msgspec), which then names any fault:
 * so whenever it answers, the answer is what that path gives. Doubt is: a byte outside ASCII or a
 * backslash anywhere, JSON it does not read to the end exactly, one of the shape's keys twice in an
 * object, an object or array as the value of any other key, a signed or 19-digit sequence number, an event of another type, a side not in ``sides``,
 * a price or size that is not plain decimal text of at most max_len characters. Every read is bounds
 * checked; the text is only read. */

typedef struct {
    const unsigned char *s;
    Py_ssize_t i, n;
} Scan;

static inline void
ws(Scan *c)
{
    while (c->i < c->n) {
        unsigned char ch = c->s[c->i];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') break;
        c->i++;
    }
}

static inline int
eat(Scan *c, unsigned char ch)
{
    ws(c);
    if (c->i < c->n && c->s[c->i] == ch) {
        c->i++;
        return 1;
    }
    return 0;
}

/* Bytes a string of the form read here cannot hold plainly: its end quote, a backslash (an escape: the
 * decoder's), a control character (not JSON), anything outside ASCII (UTF-8: the decoder's). */
static unsigned char STOP[256];

static void
stop_init(void)
{
    for (int b = 0; b < 256; b++) STOP[b] = b < 0x20 || b >= 0x80 || b == '"' || b == '\\';
}

/* a string without escapes: its bytes at [*start, *start + *len) */
static int
str_token(Scan *c, Py_ssize_t *start, Py_ssize_t *len)
{
    if (!eat(c, '"')) return 0;
    Py_ssize_t b = c->i, i = b, n = c->n;
    const unsigned char *s = c->s;
    /* eight bytes at a time while none of them stops the string (SWAR: a byte below 0x20, at or above
     * 0x80, or equal to '"' or '\\' sets its word's test), then byte by byte */
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (n - i >= 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t quote = w ^ (ones * '"'), slash = w ^ (ones * '\\');
        uint64_t stop = ((quote - ones) & ~quote) | ((slash - ones) & ~slash) | ((w - ones * 0x20) & ~w) | w;
        if (stop & highs) break;
        i += 8;
    }
    while (i < n && !STOP[s[i]]) i++;
    if (i >= n || s[i] != '"') return 0;
    *start = b;
    *len = i - b;
    c->i = i + 1;
    return 1;
}

static int
digits(Scan *c)
{
    Py_ssize_t b = c->i;
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') c->i++;
    return c->i > b;
}

/* a JSON number, checked to the grammar and left unread */
static int
skip_number(Scan *c)
{
    if (c->i < c->n && c->s[c->i] == '-') c->i++;
    if (c->i < c->n && c->s[c->i] == '0') {
        c->i++;
    }
    else if (!digits(c)) {
        return 0;
    }
    if (c->i < c->n && c->s[c->i] == '.') {
        c->i++;
        if (!digits(c)) return 0;
    }
    if (c->i < c->n && (c->s[c->i] == 'e' || c->s[c->i] == 'E')) {
        c->i++;
        if (c->i < c->n && (c->s[c->i] == '+' || c->s[c->i] == '-')) c->i++;
        if (!digits(c)) return 0;
    }
    return 1;
}

static int
literal(Scan *c, const char *word)
{
    size_t k = strlen(word);
    if ((size_t)(c->n - c->i) < k || memcmp(c->s + c->i, word, k) != 0) return 0;
    c->i += k;
    return 1;
}

/* the value of a key not read: a string, a number, true, false or null (anything else is doubt) */
static int
skip_scalar(Scan *c)
{
    ws(c);
    if (c->i >= c->n) return 0;
    unsigned char ch = c->s[c->i];
    Py_ssize_t a, b;
    if (ch == '"') return str_token(c, &a, &b);
    if (ch == '-' || (ch >= '0' && ch <= '9')) return skip_number(c);
    return literal(c, "true") || literal(c, "false") || literal(c, "null");
}

static inline int
key_is(Scan *c, Py_ssize_t start, Py_ssize_t len, PyObject *key)
{
    return PyBytes_GET_SIZE(key) == len && memcmp(c->s + start, PyBytes_AS_STRING(key), len) == 0;
}

/* the next member of an object whose '{' was read (``count`` members so far): 1 with the key's bytes
 * and the scanner at its value, 0 at the object's end, -1 on doubt */
static int
next_key(Scan *c, int *count, Py_ssize_t *start, Py_ssize_t *len)
{
    if (eat(c, '}')) return 0;
    if (*count && !eat(c, ',')) return -1;
    if (!str_token(c, start, len) || !eat(c, ':')) return -1;
    (*count)++;
    return 1;
}

/* the next item of an array whose '[' was read: 1 with the scanner at it, 0 at the end, -1 on doubt */
static int
next_item(Scan *c, int *count)
{
    if (eat(c, ']')) return 0;
    if (*count && !eat(c, ',')) return -1;
    (*count)++;
    return 1;
}

static PyObject *
ascii_str(Scan *c, Py_ssize_t start, Py_ssize_t len)
{
    PyObject *out = PyUnicode_New(len, 127);
    if (out != NULL) memcpy(PyUnicode_DATA(out), c->s + start, len);
    return out;
}

enum { K_EVENTS, K_SEQ, K_TIME, K_TYPE, K_PRODUCT, K_UPDATES, K_UPDATE, K_SIDE, K_PRICE, K_SIZE, K_COUNT };

typedef struct {
    PyObject *keys[K_COUNT]; /* bytes, borrowed from the spec */
    const char *side_text[2];
    Py_ssize_t side_len[2];
    PyObject *side_name[2]; /* borrowed from ``sides`` */
    int sides;
    Py_ssize_t max_len;
} Spec;

/* One update object: its change tuple in *out. 1 read, 0 doubt, -1 error. */
static int
read_update(Scan *c, const Spec *sp, PyObject **out)
{
    if (!eat(c, '{')) return 0;
    int count = 0, r;
    Py_ssize_t ks, kl, side_at = -1, side_len = 0, price_at = -1, price_len = 0, size_at = -1, size_len = 0;
    while ((r = next_key(c, &count, &ks, &kl)) == 1) {
        Py_ssize_t *at, *len;
        if (key_is(c, ks, kl, sp->keys[K_SIDE])) {
            at = &side_at, len = &side_len;
        }
        else if (key_is(c, ks, kl, sp->keys[K_PRICE])) {
            at = &price_at, len = &price_len;
        }
        else if (key_is(c, ks, kl, sp->keys[K_SIZE])) {
            at = &size_at, len = &size_len;
        }
        else {
            if (!skip_scalar(c)) return 0;
            continue;
        }
        if (*at >= 0 || !str_token(c, at, len)) return 0; /* twice, or not a string */
    }
    if (r < 0 || side_at < 0 || price_at < 0 || size_at < 0) return 0;
    PyObject *name = NULL;
    for (int k = 0; k < sp->sides; k++) {
        if (sp->side_len[k] == side_len && memcmp(sp->side_text[k], c->s + side_at, side_len) == 0) {
            name = sp->side_name[k];
        }
    }
    Dec pd, qd;
    if (name == NULL || !plain_bytes((const char *)c->s + price_at, price_len, sp->max_len, &pd) ||
        !plain_bytes((const char *)c->s + size_at, size_len, sp->max_len, &qd)) {
        return 0;
    }
    PyObject *change = PyTuple_New(5);
    if (change == NULL) return -1;
    Py_INCREF(name);
    PyTuple_SET_ITEM(change, 0, name);
    PyObject *items[4] = {ascii_str(c, price_at, price_len), ascii_str(c, size_at, size_len), to_float(&pd),
                          to_float(&qd)};
    for (int k = 0; k < 4; k++) {
        PyTuple_SET_ITEM(change, k + 1, items[k]); /* the tuple takes them; NULLs too, checked below */
    }
    if (!items[0] || !items[1] || !items[2] || !items[3]) {
        Py_DECREF(change);
        return -1;
    }
    if (PyUnicode_CheckExact(name)) {
        PyObject_GC_UnTrack(change); /* strings and floats only: no cycle can go through it */
    }
    *out = change;
    return 1;
}

/* An array of objects each read by ``read`` into a new list in *out. 1 read, 0 doubt, -1 error; *out is
 * set (and the caller's to release) whenever the list was made. */
typedef int (*Reader)(Scan *c, const Spec *sp, PyObject **out);

static int
read_array(Scan *c, const Spec *sp, Reader read, PyObject **out)
{
    if (!eat(c, '[')) return 0;
    PyObject *list = *out = PyList_New(0);
    if (list == NULL) return -1;
    int items = 0, more;
    while ((more = next_item(c, &items)) == 1) {
        PyObject *item = NULL;
        int got = read(c, sp, &item);
        if (got <= 0) return got;
        int failed = PyList_Append(list, item);
        Py_DECREF(item);
        if (failed < 0) return -1;
    }
    return more < 0 ? 0 : 1;
}

/* One event object: (product, changes) in *out. 1 read, 0 doubt, -1 error. */
static int
read_event(Scan *c, const Spec *sp, PyObject **out)
{
    if (!eat(c, '{')) return 0;
    int count = 0, r, typed = 0, status = 0;
    Py_ssize_t ks, kl, a, b;
    PyObject *product = NULL, *changes = NULL;
    while ((r = next_key(c, &count, &ks, &kl)) == 1) {
        if (key_is(c, ks, kl, sp->keys[K_TYPE])) {
            if (typed || !str_token(c, &a, &b) || !key_is(c, a, b, sp->keys[K_UPDATE])) goto done;
            typed = 1;
        }
        else if (key_is(c, ks, kl, sp->keys[K_PRODUCT])) {
            if (product != NULL || !str_token(c, &a, &b)) goto done;
            product = ascii_str(c, a, b);
            if (product == NULL) {
                status = -1;
                goto done;
            }
        }
        else if (key_is(c, ks, kl, sp->keys[K_UPDATES])) {
            if (changes != NULL) goto done;
            status = read_array(c, sp, read_update, &changes);
            if (status <= 0) goto done;
            status = 0;
        }
        else if (!skip_scalar(c)) {
            goto done;
        }
    }
    if (r < 0 || !typed || product == NULL || changes == NULL) goto done;
    *out = PyTuple_Pack(2, product, changes);
    status = *out == NULL ? -1 : 1;
done:
    Py_XDECREF(product);
    Py_XDECREF(changes);
    return status;
}

PyDoc_STRVAR(level_frame_doc,
"level_frame(raw, keys, sides, max_len, /) -> (seq, timestamp, [(product, changes)]) | None\n\n"
"A level-update frame read straight from its JSON bytes: an object with an array of events, each an\n"
"object of the update type with a product and an array of updates, each an object with a side, a\n"
"price and a size (keys: the frame's events, sequence number and time; the event's type, product and\n"
"updates, and the update type's value; the update's side, price and size, all bytes). Each update as\n"
"level_changes makes it (sides[side], price, size, their values). None when the frame is not of that\n"
"form without any doubt (see _native.c): the venue's general decoder then reads it.");

static PyObject *
level_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!arity("level_frame", nargs, 4)) return NULL;
    PyObject *raw = args[0], *keys = args[1], *sides = args[2];
    if (!PyBytes_CheckExact(raw) || !PyTuple_CheckExact(keys) || PyTuple_GET_SIZE(keys) != K_COUNT ||
        !PyDict_Check(sides)) {
        PyErr_SetString(PyExc_TypeError, "level_frame(raw: bytes, keys: tuple of 10 bytes, sides: dict, max_len)");
        return NULL;
    }
    Spec sp;
    if (!size_arg(args[3], &sp.max_len)) return NULL;
    for (int k = 0; k < K_COUNT; k++) {
        sp.keys[k] = PyTuple_GET_ITEM(keys, k);
        if (!PyBytes_CheckExact(sp.keys[k])) {
            PyErr_SetString(PyExc_TypeError, "level_frame(): the keys are bytes");
            return NULL;
        }
    }
    sp.sides = 0;
    Py_ssize_t at = 0;
    PyObject *key, *value;
    while (PyDict_Next(sides, &at, &key, &value)) {
        if (sp.sides == 2 || !PyUnicode_Check(key) || !PyUnicode_IS_ASCII(key)) {
            PyErr_SetString(PyExc_TypeError, "level_frame(): sides maps at most two ASCII strings");
            return NULL;
        }
        sp.side_text[sp.sides] = (const char *)PyUnicode_DATA(key);
        sp.side_len[sp.sides] = PyUnicode_GET_LENGTH(key);
        sp.side_name[sp.sides] = value;
        sp.sides++;
    }
    /* a byte outside ASCII, or a backslash, is doubt wherever it is: in a string (STOP), or outside one
     * (not the grammar) */
    Scan c = {(const unsigned char *)PyBytes_AS_STRING(raw), 0, PyBytes_GET_SIZE(raw)};
    PyObject *seq = NULL, *stamp = NULL, *events = NULL, *result = NULL;
    int status = 0, count = 0, r, seen_seq = 0, seen_stamp = 0;
    Py_ssize_t ks, kl, a, b;
    if (!eat(&c, '{')) goto done;
    while ((r = next_key(&c, &count, &ks, &kl)) == 1) {
        if (key_is(&c, ks, kl, sp.keys[K_EVENTS])) {
            if (events != NULL) goto done;
            status = read_array(&c, &sp, read_event, &events);
            if (status <= 0) goto done;
            status = 0;
        }
        else if (key_is(&c, ks, kl, sp.keys[K_SEQ])) {
            if (seen_seq) goto done;
            seen_seq = 1;
            ws(&c);
            if (literal(&c, "null")) continue;
            Py_ssize_t from = c.i;
            if (!digits(&c) || c.i - from > 18 || (c.s[from] == '0' && c.i - from > 1)) goto done;
            if (c.i < c.n && (c.s[c.i] == '.' || c.s[c.i] == 'e' || c.s[c.i] == 'E')) goto done;
            long long v = 0;
            for (Py_ssize_t i = from; i < c.i; i++) v = v * 10 + (c.s[i] - '0');
            seq = PyLong_FromLongLong(v);
            if (seq == NULL) {
                status = -1;
                goto done;
            }
        }
        else if (key_is(&c, ks, kl, sp.keys[K_TIME])) {
            if (seen_stamp) goto done;
            seen_stamp = 1;
            ws(&c);
            if (literal(&c, "null")) continue;
            if (!str_token(&c, &a, &b)) goto done;
            stamp = ascii_str(&c, a, b);
            if (stamp == NULL) {
                status = -1;
                goto done;
            }
        }
        else if (!skip_scalar(&c)) {
            goto done;
        }
    }
    if (r < 0 || events == NULL) goto done;
    ws(&c);
    if (c.i != c.n) goto done; /* something after the object */
    result = PyTuple_Pack(3, seq ? seq : Py_None, stamp ? stamp : Py_None, events);
    status = result == NULL ? -1 : 1;
done:
    Py_XDECREF(seq);
    Py_XDECREF(stamp);
    Py_XDECREF(events);
    if (status < 0) return NULL;
    if (status == 0) Py_RETURN_NONE;
    return result;
}

PyDoc_STRVAR(data_frames_doc,
"data_frames(data, pos, limit, out, /) -> int\n\n"
"FrameReader.feed's common case: from ``pos`` on, every whole, unfragmented, unmasked text or binary\n"
"frame (first byte 0x81 or 0x82) of at most ``limit`` payload bytes, its payload appended to ``out``\n"
"as bytes. Stops at the first frame that is anything else, or not whole yet, and returns where it\n"
"starts (the reader's general loop takes it from there: controls, fragments, errors, waiting).");

static PyObject *
data_frames(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!arity("data_frames", nargs, 4)) return NULL;
    PyObject *data = args[0], *out = args[3];
    const unsigned char *s;
    Py_ssize_t n;
    if (PyBytes_CheckExact(data)) {
        s = (const unsigned char *)PyBytes_AS_STRING(data);
        n = PyBytes_GET_SIZE(data);
    }
    else if (PyByteArray_CheckExact(data)) {
        s = (const unsigned char *)PyByteArray_AS_STRING(data);
        n = PyByteArray_GET_SIZE(data);
    }
    else {
        PyErr_SetString(PyExc_TypeError, "data_frames(): bytes or bytearray expected");
        return NULL;
    }
    if (!PyList_CheckExact(out)) {
        PyErr_SetString(PyExc_TypeError, "data_frames(): out must be a list");
        return NULL;
    }
    Py_ssize_t pos, limit;
    if (!size_arg(args[1], &pos) || !size_arg(args[2], &limit)) return NULL;
    if (pos < 0 || limit < 0) {
        PyErr_SetString(PyExc_ValueError, "data_frames(): pos and limit cannot be negative");
        return NULL;
    }
    /* nothing below runs Python code, so a bytearray cannot be resized under us */
    while (pos <= n - 2) {
        unsigned char b0 = s[pos], b1 = s[pos + 1];
        if ((b0 != 0x81 && b0 != 0x82) || (b1 & 0x80)) break;
        unsigned long long length = b1 & 0x7F;
        Py_ssize_t head = pos + 2;
        if (length == 126) {
            if (n - head < 2) break;
            length = ((unsigned long long)s[head] << 8) | s[head + 1];
            head += 2;
        }
        else if (length == 127) {
            if (n - head < 8) break;
            length = 0;
            for (int i = 0; i < 8; i++) length = (length << 8) | s[head + i];
            head += 8;
        }
        if (length > (unsigned long long)limit || length > (unsigned long long)(n - head)) break;
        PyObject *payload = PyBytes_FromStringAndSize((const char *)s + head, (Py_ssize_t)length);
        if (payload == NULL) return NULL;
        int failed = PyList_Append(out, payload);
        Py_DECREF(payload);
        if (failed < 0) return NULL;
        pos = head + (Py_ssize_t)length;
    }
    return PyLong_FromSsize_t(pos);
}

static PyMethodDef methods[] = {
    {"changes", (PyCFunction)(void (*)(void))changes, METH_FASTCALL, changes_doc},
    {"apply_levels", (PyCFunction)(void (*)(void))apply_levels, METH_FASTCALL, apply_levels_doc},
    {"trade_events", (PyCFunction)(void (*)(void))trade_events, METH_FASTCALL, trade_events_doc},
    {"bar_span", (PyCFunction)(void (*)(void))bar_span, METH_FASTCALL, bar_span_doc},
    {"rfc3339", (PyCFunction)rfc3339, METH_O, rfc3339_doc},
    {"fresh_trades", (PyCFunction)(void (*)(void))fresh_trades, METH_FASTCALL, fresh_trades_doc},
    {"decimal_parts", (PyCFunction)(void (*)(void))decimal_parts, METH_FASTCALL, decimal_parts_doc},
    {"data_frames", (PyCFunction)(void (*)(void))data_frames, METH_FASTCALL, data_frames_doc},
    {"level_frame", (PyCFunction)(void (*)(void))level_frame, METH_FASTCALL, level_frame_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "tickerterm.core._native",
    "The hot path's per-update loops in C (see tickerterm/core/native.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    stop_init();
    str_bid = PyUnicode_InternFromString("bid");
    str_venue = PyUnicode_InternFromString("venue");
    str_product = PyUnicode_InternFromString("product");
    str_trade_id = PyUnicode_InternFromString("trade_id");
    str_exch_ts = PyUnicode_InternFromString("exch_ts");
    str_price = PyUnicode_InternFromString("price");
    if (str_bid == NULL || str_venue == NULL || str_product == NULL || str_trade_id == NULL || str_exch_ts == NULL ||
        str_price == NULL) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) {
        return NULL;
    }
    if (PyType_Ready(&LevelsType) < 0 || PyModule_AddObjectRef(m, "Levels", (PyObject *)&LevelsType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "API", API) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
