/*
 * toto_infer.c - toto-infer: one forecast from the command line, without the
 * daemon. Reads one request from stdin (the forecast params, or a whole
 * JSON-RPC request), runs it on a checkpoint and writes one line of JSON to
 * stdout. The request is parsed before the model is opened, so a malformed
 * request is refused without paying for loading the weights.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forecast_codec.h"
#include "toto.h"

#define PROGRAM "toto-infer"

/* Exit statuses; 2 also covers a request the protocol or the model refuses. */
enum { EXIT_MODEL_OR_IO = 1, EXIT_USAGE = 2, KEEP_GOING = -1 };

typedef struct cli_options {
    const char *model_dir;
    const char *device; /* NULL: the model's default */
    const char *dtype;  /* NULL: the model's default */
    int threads;        /* -1: the model's default */
} cli_options;

/* What stdin held. params and id point into doc. */
typedef struct cli_request {
    json_t *doc;
    const json_t *params;
    bool jsonrpc; /* answer with a JSON-RPC response object */
    json_t *id;   /* the JSON-RPC id; NULL answers with null */
} cli_request;

static void print_usage(FILE *to) {
    toto_model_params defaults = toto_model_default_params();
    fprintf(to,
            "Usage: " PROGRAM " --model DIR [--device cpu|cuda|cuda:N] [--dtype float32|float64]\n"
            "                  [--threads N]\n"
            "       " PROGRAM " --help | --version\n\n"
            "Reads one forecast request from stdin and writes the result to stdout as one\n"
            "line of JSON. The request is the params object of the forecast method, or a\n"
            "JSON-RPC 2.0 request {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"forecast\","
            "\"params\":{...}},\n"
            "which is answered with a JSON-RPC response (errors too). See protocol/PROTOCOL.md.\n\n"
            "  --model DIR    checkpoint directory (config.json, model.safetensors);\n"
            "                 default: $TOTO_MODEL\n"
            "  --device DEV   cpu, cuda or cuda:N (default %s)\n"
            "  --dtype TYPE   float32 or float64 (default %s)\n"
            "  --threads N    CPU threads; 0 keeps libtorch's default\n"
            "  --help         show this help\n"
            "  --version      show the version\n\n"
            "Exit status: 0 done, 1 model or I/O error, 2 usage error or invalid request.\n",
            defaults.device, defaults.dtype);
}

static int usage_error(const char *fmt, const char *what) {
    fprintf(stderr, PROGRAM ": ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\nTry '" PROGRAM " --help'.\n");
    return EXIT_USAGE;
}

/*
 * Matches argv[*i] against "--name VALUE" or "--name=VALUE". Returns 1 and
 * sets *value (advancing *i past a separate value), 0 when argv[*i] is
 * another option, -1 when the value is missing.
 */
static int option_value(int argc, char **argv, int *i, const char *name, const char **value) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *value = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *value = argv[++*i];
    return 1;
}

static int parse_threads(const char *text, int *threads) {
    char *end;
    errno = 0;
    long n = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || n < 0 || n > INT_MAX)
        return usage_error("--threads: expected an integer >= 0, got '%s'", text);
    *threads = (int)n;
    return KEEP_GOING;
}

/* One option at argv[*i]; returns KEEP_GOING, an exit status, or EXIT_SUCCESS after --help. */
static int parse_option(int argc, char **argv, int *i, cli_options *opt) {
    static const char *const names[] = {"--model", "--device", "--dtype", "--threads"};
    const char **targets[] = {&opt->model_dir, &opt->device, &opt->dtype, NULL};
    const char *value;
    if (strcmp(argv[*i], "--help") == 0 || strcmp(argv[*i], "-h") == 0) {
        print_usage(stdout);
        return EXIT_SUCCESS;
    }
    if (strcmp(argv[*i], "--version") == 0) {
        printf(PROGRAM " %s\n", TOTO_VERSION);
        return EXIT_SUCCESS;
    }
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        int found = option_value(argc, argv, i, names[k], &value);
        if (found < 0)
            return usage_error("%s: missing value", names[k]);
        if (found && !targets[k])
            return parse_threads(value, &opt->threads);
        if (found) {
            *targets[k] = value;
            return KEEP_GOING;
        }
    }
    return usage_error("unknown argument '%s'", argv[*i]);
}

/* Returns KEEP_GOING with opt filled, or the status to exit with. */
static int parse_args(int argc, char **argv, cli_options *opt) {
    *opt = (cli_options){.threads = -1};
    for (int i = 1; i < argc; i++) {
        int status = parse_option(argc, argv, &i, opt);
        if (status != KEEP_GOING)
            return status;
    }
    if (!opt->model_dir)
        opt->model_dir = getenv("TOTO_MODEL");
    if (!opt->model_dir || opt->model_dir[0] == '\0')
        return usage_error("%s", "no model: pass --model DIR or set TOTO_MODEL");
    return KEEP_GOING;
}

static void set_error(proto_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(proto_error *err, int code, const char *fmt, ...) {
    va_list ap;
    memset(err, 0, sizeof *err);
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

/* Appends to err->message (details after a first sentence). */
static void append_error(proto_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void append_error(proto_error *err, const char *fmt, ...) {
    va_list ap;
    size_t used = strlen(err->message);
    va_start(ap, fmt);
    vsnprintf(err->message + used, sizeof err->message - used, fmt, ap);
    va_end(ap);
}

static bool is_valid_id(const json_t *id) {
    return json_is_string(id) || json_is_number(id) || json_is_null(id);
}

/* The JSON-RPC envelope: jsonrpc "2.0", a string method, a valid id. */
static int check_envelope(const json_t *doc, proto_error *err) {
    const json_t *version = json_object_get(doc, "jsonrpc");
    const json_t *method = json_object_get(doc, "method");
    const json_t *id = json_object_get(doc, "id");
    if (!json_is_string(version) || strcmp(json_string_value(version), "2.0") != 0)
        set_error(err, PROTO_INVALID_REQUEST, "jsonrpc: must be \"2.0\"");
    else if (!json_is_string(method))
        set_error(err, PROTO_INVALID_REQUEST, "method: must be a string");
    else if (id && !is_valid_id(id))
        set_error(err, PROTO_INVALID_REQUEST, "id: must be a string, a number or null");
    else if (strcmp(json_string_value(method), "forecast") != 0)
        set_error(err, PROTO_METHOD_NOT_FOUND,
                  "method not found: '%s' (" PROGRAM " answers forecast only)",
                  json_string_value(method));
    else
        return 0;
    return -1;
}

/* Reads the one JSON document on stdin; returns KEEP_GOING or EXIT_USAGE with err set. */
static int read_request(cli_request *in, proto_error *err) {
    json_error_t jerr;
    memset(in, 0, sizeof *in);
    in->doc = json_loadf(stdin, 0, &jerr);
    if (!in->doc) {
        set_error(err, PROTO_PARSE_ERROR, "stdin: %s (line %d, column %d)", jerr.text, jerr.line,
                  jerr.column);
        return EXIT_USAGE;
    }
    in->params = in->doc;
    if (!json_is_object(in->doc) || !json_object_get(in->doc, "method"))
        return KEEP_GOING;
    in->jsonrpc = true;
    in->id = json_object_get(in->doc, "id");
    if (!is_valid_id(in->id))
        in->id = NULL; /* answered with a null id, as JSON-RPC asks */
    in->params = json_object_get(in->doc, "params");
    return check_envelope(in->doc, err) ? EXIT_USAGE : KEEP_GOING;
}

/* Writes doc and a newline to stdout. Returns EXIT_SUCCESS or EXIT_MODEL_OR_IO. */
static int write_line(const json_t *doc) {
    if (!doc || json_dumpf(doc, stdout, PROTO_JSON_FLAGS) || fputc('\n', stdout) == EOF ||
        fflush(stdout)) {
        fprintf(stderr, PROGRAM ": cannot write the answer to stdout: %s\n",
                doc ? strerror(errno) : "out of memory");
        return EXIT_MODEL_OR_IO;
    }
    return EXIT_SUCCESS;
}

/* {"jsonrpc":"2.0","id":...,key:body}; takes body. NULL when out of memory. */
static json_t *jsonrpc_response(const cli_request *in, const char *key, json_t *body) {
    json_t *response =
        json_pack("{s:s, s:O}", "jsonrpc", "2.0", "id", in->id ? in->id : json_null());
    if (json_object_set_new(response, key, body)) { /* drops body when response is NULL */
        json_decref(response);
        return NULL;
    }
    return response;
}

/* Writes body bare, or under key ("result" / "error") of a JSON-RPC response. Takes body. */
static int write_answer(const cli_request *in, const char *key, json_t *body) {
    json_t *doc = in->jsonrpc ? jsonrpc_response(in, key, body) : body;
    int status = write_line(doc);
    json_decref(doc);
    return status;
}

/* Says what went wrong on stderr (and, for JSON-RPC, as an error response); returns status. */
static int report_error(const cli_request *in, const proto_error *err, int status) {
    fprintf(stderr, PROGRAM ": %s\n", err->message);
    if (in->jsonrpc)
        write_answer(in, "error", proto_error_encode(err));
    return status;
}

static toto_model *open_model(const cli_options *opt, proto_error *err) {
    toto_model_params params = toto_model_default_params();
    char message[512];
    if (opt->device)
        params.device = opt->device;
    if (opt->dtype)
        params.dtype = opt->dtype;
    if (opt->threads >= 0)
        params.cpu_threads = opt->threads;
    /* TOTO_COMPILE, TOTO_COMPILE_MODE, TOTO_DISABLE_COMPILE, as in the Python setup. */
    if (toto_model_params_from_env(&params, message, sizeof message) != TOTO_OK) {
        set_error(err, PROTO_INVALID_PARAMS, "%s", message);
        return NULL;
    }
    toto_model *model = toto_model_open(opt->model_dir, &params, message, sizeof message);
    if (!model) {
        set_error(err, PROTO_INTERNAL_ERROR, "cannot open model %s: ", opt->model_dir);
        append_error(err, "%s", message);
    }
    return model;
}

/* A model error code as an exit status: the request's fault (2) or not (1). */
static int model_failure(int toto_code, const char *message, proto_error *err) {
    proto_error_from_toto(toto_code, message, err);
    return toto_code == TOTO_EINVAL ? EXIT_USAGE : EXIT_MODEL_OR_IO;
}

/* Validates and runs one request; on success *result holds the encoded result. */
static int forecast_one(toto_model *model, const toto_request *req, json_t **result,
                        proto_error *err) {
    char message[512];
    toto_result res;
    memset(&res, 0, sizeof res);
    int code = toto_request_validate(model, req, message, sizeof message);
    if (code != TOTO_OK)
        return model_failure(code, message, err);
    code = toto_forecast(model, req, &res, 1, message, sizeof message);
    if (code == TOTO_OK && res.status != TOTO_OK)
        snprintf(message, sizeof message, "%s", res.error);
    if (code == TOTO_OK)
        code = res.status;
    int status = code != TOTO_OK ? model_failure(code, message, err) : EXIT_SUCCESS;
    if (status == EXIT_SUCCESS) {
        toto_model_info info;
        toto_model_get_info(model, &info);
        *result = proto_forecast_result_encode(req, &res, &info);
        if (!*result) {
            set_error(err, PROTO_INTERNAL_ERROR, "cannot encode the result (out of memory?)");
            status = EXIT_MODEL_OR_IO;
        }
    }
    toto_result_free(&res);
    return status;
}

/* Parses params, runs them and writes the answer; returns the exit status. */
static int answer(const cli_options *opt, const cli_request *in) {
    proto_forecast_request req;
    proto_error err;
    json_t *result = NULL;
    if (proto_forecast_parse(in->params, &req, &err))
        return report_error(in, &err, EXIT_USAGE);
    int status = EXIT_MODEL_OR_IO;
    toto_model *model = open_model(opt, &err);
    if (model) {
        status = forecast_one(model, &req.req, &result, &err);
        toto_model_free(model);
    }
    proto_forecast_request_free(&req);
    if (status != EXIT_SUCCESS)
        return report_error(in, &err, status);
    return write_answer(in, "result", result);
}

int main(int argc, char **argv) {
    cli_options opt;
    int status = parse_args(argc, argv, &opt);
    if (status != KEEP_GOING)
        return status;
    cli_request in;
    proto_error err;
    status = read_request(&in, &err);
    if (status == KEEP_GOING)
        status = answer(&opt, &in);
    else
        status = report_error(&in, &err, status);
    json_decref(in.doc);
    return status;
}
