/* Exercises every function of the C ABI, including every error path, as a C host would.
 * Built with -std=c11 -Wall -Wextra -Werror and run under AddressSanitizer by scripts/test.sh. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uptake.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        checks++;                                                                         \
        if (!(cond)) {                                                                    \
            failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__,       \
                    __LINE__, #cond, uptake_last_error());                                \
        }                                                                                 \
    } while (0)

/* The status and a non-empty last error that mentions `needle`. */
#define CHECK_ERR(call, status, needle)                                                   \
    do {                                                                                  \
        uint32_t st_ = (call);                                                            \
        CHECK(st_ == (status));                                                           \
        CHECK(strstr(uptake_last_error(), (needle)) != NULL);                             \
    } while (0)

static int log_lines = 0;
static void on_log(uint32_t level, const char *message, void *user_data) {
    (void)level;
    int *counter = (int *)user_data;
    if (message != NULL && message[0] != '\0') {
        (*counter)++;
    }
}

static UptakeVolume valid_volume(const float *data) {
    UptakeVolume v;
    CHECK(uptake_volume_init(&v) == UPTAKE_OK);
    v.dims[0] = 4;
    v.dims[1] = 3;
    v.dims[2] = 2;
    for (int i = 0; i < 3; i++) {
        v.spacing_mm[i] = 2.0;
        v.origin_mm[i] = -10.0;
    }
    v.data = data;
    v.data_len = 24;
    return v;
}

static void test_versions(void) {
    CHECK(uptake_abi_version() == UPTAKE_ABI_VERSION);
    const char *version = uptake_version();
    CHECK(version != NULL && strlen(version) >= 5);
    CHECK(strcmp(uptake_status_name(UPTAKE_OK), "ok") == 0);
    CHECK(strcmp(uptake_status_name(UPTAKE_ERR_PANIC), "panic") == 0);
    CHECK(strcmp(uptake_status_name(12345), "unknown status") == 0);
}

static void test_last_error_copy(void) {
    /* Produce a known error first. */
    CHECK_ERR(uptake_analyzer_options_init(NULL), UPTAKE_ERR_INVALID_ARGUMENT, "options is NULL");
    const char *expected = uptake_last_error();
    size_t len = 0;
    char big[256];
    CHECK(uptake_last_error_copy(big, sizeof big, &len) == UPTAKE_OK);
    CHECK(len == strlen(expected));
    CHECK(strcmp(big, expected) == 0);
    char small[8];
    CHECK(uptake_last_error_copy(small, sizeof small, &len) == UPTAKE_ERR_INVALID_ARGUMENT);
    CHECK(strlen(small) == sizeof small - 1);
    CHECK(strncmp(small, expected, sizeof small - 1) == 0);
    CHECK(uptake_last_error_copy(NULL, 0, &len) == UPTAKE_ERR_INVALID_ARGUMENT);
    CHECK(len == strlen(expected));
    CHECK(uptake_last_error_copy(NULL, 10, NULL) == UPTAKE_ERR_INVALID_ARGUMENT);
    /* Copying does not change the stored message. */
    CHECK(strcmp(uptake_last_error(), big) == 0);
}

static void test_analyzer(void) {
    UptakeAnalyzer *analyzer = (UptakeAnalyzer *)0x1;
    /* NULL options = defaults. */
    CHECK(uptake_analyzer_create(NULL, &analyzer) == UPTAKE_OK);
    CHECK(analyzer != NULL);
    uint32_t device = 99;
    CHECK(uptake_analyzer_device(analyzer, &device) == UPTAKE_OK);
    CHECK(device == UPTAKE_DEVICE_CPU);
    CHECK_ERR(uptake_analyzer_device(analyzer, NULL), UPTAKE_ERR_INVALID_ARGUMENT, "out_device");
    CHECK_ERR(uptake_analyzer_device(NULL, &device), UPTAKE_ERR_INVALID_ARGUMENT, "analyzer");
    /* Each tracer's operating points lie in (0, 1): the embedded model's PSMA pair is its
       general one (UptakeModelInfo), FDG has its own; bad arguments write nothing. */
    float threshold[2] = {-1.0f, -1.0f}, distant[2] = {-1.0f, -1.0f};
    for (uint32_t tracer = UPTAKE_TRACER_PSMA; tracer <= UPTAKE_TRACER_FDG; tracer++) {
        CHECK(uptake_analyzer_operating_points(analyzer, tracer, &threshold[tracer],
                                               &distant[tracer]) == UPTAKE_OK);
        CHECK(threshold[tracer] > 0.0f && threshold[tracer] < 1.0f);
        CHECK(distant[tracer] > 0.0f && distant[tracer] < 1.0f);
    }
    UptakeModelInfo info = {.struct_size = sizeof info};
    CHECK(uptake_analyzer_model_info(analyzer, &info) == UPTAKE_OK);
    CHECK(threshold[UPTAKE_TRACER_PSMA] == info.threshold);
    CHECK(distant[UPTAKE_TRACER_PSMA] == info.distant_threshold);
    CHECK(distant[UPTAKE_TRACER_FDG] != info.distant_threshold);
    float untouched = -1.0f;
    CHECK_ERR(uptake_analyzer_operating_points(analyzer, 7, &untouched, &untouched),
              UPTAKE_ERR_INVALID_ARGUMENT, "tracer");
    CHECK_ERR(uptake_analyzer_operating_points(NULL, UPTAKE_TRACER_FDG, &untouched, &untouched),
              UPTAKE_ERR_INVALID_ARGUMENT, "analyzer");
    CHECK(untouched == -1.0f);
    /* Either output may be NULL: the other is still written. */
    float only = -1.0f;
    CHECK(uptake_analyzer_operating_points(analyzer, UPTAKE_TRACER_FDG, &only, NULL) == UPTAKE_OK);
    CHECK(only == threshold[UPTAKE_TRACER_FDG]);
    only = -1.0f;
    CHECK(uptake_analyzer_operating_points(analyzer, UPTAKE_TRACER_FDG, NULL, &only) == UPTAKE_OK);
    CHECK(only == distant[UPTAKE_TRACER_FDG]);
    CHECK(uptake_analyzer_operating_points(analyzer, UPTAKE_TRACER_FDG, NULL, NULL) == UPTAKE_OK);
    uptake_analyzer_free(analyzer);
    uptake_analyzer_free(NULL);

    UptakeAnalyzerOptions options;
    CHECK(uptake_analyzer_options_init(&options) == UPTAKE_OK);
    CHECK(options.struct_size == sizeof options);
    CHECK(options.device == UPTAKE_DEVICE_AUTO);
    CHECK(options.model_path == NULL);
    options.device = UPTAKE_DEVICE_CPU;
    options.threads = 2;
    CHECK(uptake_analyzer_create(&options, &analyzer) == UPTAKE_OK);
    uptake_analyzer_free(analyzer);

    CHECK_ERR(uptake_analyzer_create(&options, NULL), UPTAKE_ERR_INVALID_ARGUMENT, "out is NULL");

    UptakeAnalyzerOptions bad = options;
    bad.struct_size = 0;
    analyzer = (UptakeAnalyzer *)0x1;
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT, "struct_size");
    CHECK(analyzer == NULL); /* cleared on failure */
    bad.struct_size = 3;
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT, "struct_size");
    bad.struct_size = 1u << 20;
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT, "struct_size");

    /* A newer caller's larger struct is fine when the fields we do not know are zero. */
    struct {
        UptakeAnalyzerOptions known;
        uint64_t future;
    } newer;
    memset(&newer, 0, sizeof newer);
    CHECK(uptake_analyzer_options_init(&newer.known) == UPTAKE_OK);
    newer.known.struct_size = sizeof newer;
    CHECK(uptake_analyzer_create(&newer.known, &analyzer) == UPTAKE_OK);
    uptake_analyzer_free(analyzer);
    newer.future = 7;
    CHECK_ERR(uptake_analyzer_create(&newer.known, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT,
              "does not support");

    bad = options;
    bad.device = 9;
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT, "device");
    bad = options;
    bad.reserved = 1;
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT, "reserved");
    bad = options;
    bad.threads = 100000;
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT, "threads");
    bad = options;
    bad.model_path = "/nonexistent/model.safetensors";
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT, "model");
    bad = options;
    bad.model_path = "\xff\xfe";
    CHECK_ERR(uptake_analyzer_create(&bad, &analyzer), UPTAKE_ERR_INVALID_ARGUMENT, "UTF-8");
    /* device = cuda: a device error where no CUDA device opens (CI), an analyzer where one does. */
    UptakeAnalyzerOptions cuda = options;
    cuda.device = UPTAKE_DEVICE_CUDA;
    uint32_t st = uptake_analyzer_create(&cuda, &analyzer);
    if (st == UPTAKE_OK) {
        uint32_t device = 0;
        CHECK(uptake_analyzer_device(analyzer, &device) == UPTAKE_OK);
        CHECK(device == UPTAKE_DEVICE_CUDA);
        uptake_analyzer_free(analyzer);
        analyzer = NULL;
    } else {
        CHECK(st == UPTAKE_ERR_DEVICE);
        CHECK(strstr(uptake_last_error(), "CUDA") != NULL);
        CHECK(analyzer == NULL);
    }
}

static void test_volume(void) {
    float data[24];
    for (int i = 0; i < 24; i++) {
        data[i] = (float)i;
    }
    float before[24];
    memcpy(before, data, sizeof data);

    UptakeVolume v = valid_volume(data);
    CHECK(uptake_volume_check(&v) == UPTAKE_OK);
    CHECK(memcmp(before, data, sizeof data) == 0); /* caller's data untouched */

    CHECK_ERR(uptake_volume_check(NULL), UPTAKE_ERR_INVALID_ARGUMENT, "volume is NULL");
    CHECK_ERR(uptake_volume_init(NULL), UPTAKE_ERR_INVALID_ARGUMENT, "volume is NULL");

    UptakeVolume bad = v;
    bad.struct_size = 8;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "struct_size");
    bad = v;
    bad.dims[1] = 0;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "dimension 1 is zero");
    bad = v;
    bad.dims[0] = bad.dims[1] = bad.dims[2] = 4096;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "2^31");
    bad = v;
    bad.spacing_mm[2] = -1.0;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "spacing");
    bad = v;
    bad.spacing_mm[0] = NAN;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "spacing");
    bad = v;
    bad.origin_mm[0] = INFINITY;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "origin");
    bad = v;
    bad.direction[1] = 0.5;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "orthonormal");
    bad = v;
    bad.data = NULL;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "data is NULL");
    bad = v;
    bad.data_len = 23;
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "data_len");
    bad = v;
    bad.data = (const float *)((const char *)data + 1);
    CHECK_ERR(uptake_volume_check(&bad), UPTAKE_ERR_INVALID_ARGUMENT, "aligned");

    data[5] = NAN;
    data[7] = INFINITY;
    CHECK_ERR(uptake_volume_check(&v), UPTAKE_ERR_INVALID_ARGUMENT, "2 non-finite");
}

static void test_logging(void) {
    CHECK_ERR(uptake_set_log_callback(on_log, &log_lines, 77), UPTAKE_ERR_INVALID_ARGUMENT,
              "max_level");
    CHECK(uptake_set_log_callback(on_log, &log_lines, UPTAKE_LOG_INFO) == UPTAKE_OK);
    UptakeAnalyzer *analyzer = NULL;
    /* device auto logs which device it chose. */
    CHECK(uptake_analyzer_create(NULL, &analyzer) == UPTAKE_OK);
    uptake_analyzer_free(analyzer);
    CHECK(log_lines > 0);
    int before = log_lines;
    CHECK(uptake_set_log_callback(NULL, NULL, UPTAKE_LOG_TRACE) == UPTAKE_OK);
    CHECK(uptake_analyzer_create(NULL, &analyzer) == UPTAKE_OK);
    uptake_analyzer_free(analyzer);
    CHECK(log_lines == before);
}

static void test_plugin_table(void) {
    const UptakePluginV1 *plugin = uptake_plugin_v1();
    CHECK(plugin != NULL);
    CHECK(plugin->struct_size == sizeof(UptakePluginV1));
    CHECK(plugin->abi_version == UPTAKE_ABI_VERSION);
    CHECK(strcmp(plugin->name, "uptake") == 0);
    CHECK(strcmp(plugin->version, uptake_version()) == 0);
    CHECK(plugin->analyzer_create == uptake_analyzer_create);
    CHECK(plugin->volume_check == uptake_volume_check);
    CHECK(plugin->analyzer_operating_points == uptake_analyzer_operating_points);
    UptakeAnalyzer *analyzer = NULL;
    CHECK(plugin->analyzer_create(NULL, &analyzer) == UPTAKE_OK);
    plugin->analyzer_free(analyzer);
    CHECK(plugin->volume_check(NULL) == UPTAKE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(plugin->last_error(), "NULL") != NULL);
}

/* A small study: PET with two Gaussian hot spots in SUV, CT of soft tissue, same 4 mm grid. */
enum { N = 24 };
static float study_pet[N * N * N];
static float study_ct[N * N * N];

static void make_study(UptakeVolume *pet, UptakeVolume *ct) {
    for (int z = 0; z < N; z++) {
        for (int y = 0; y < N; y++) {
            for (int x = 0; x < N; x++) {
                double a = (x - 8) * (x - 8) + (y - 10) * (y - 10) + (z - 12) * (z - 12);
                double b = (x - 17) * (x - 17) + (y - 14) * (y - 14) + (z - 9) * (z - 9);
                int i = x + N * (y + N * z);
                study_pet[i] = (float)(0.5 + 12.0 * exp(-a / 4.0) + 5.0 * exp(-b / 3.0));
                study_ct[i] = 40.0f;
            }
        }
    }
    const float *data[2] = {study_pet, study_ct};
    UptakeVolume *out[2] = {pet, ct};
    for (int k = 0; k < 2; k++) {
        CHECK(uptake_volume_init(out[k]) == UPTAKE_OK);
        for (int a = 0; a < 3; a++) {
            out[k]->dims[a] = N;
            out[k]->spacing_mm[a] = 4.0;
            out[k]->origin_mm[a] = -48.0;
        }
        out[k]->data = data[k];
        out[k]->data_len = N * N * N;
    }
}

static uint32_t cancel_at_classify(uint32_t stage, float fraction, void *user_data) {
    (void)fraction;
    (*(int *)user_data)++;
    return stage == UPTAKE_STAGE_CLASSIFY ? 1 : 0;
}

/* Records which UPTAKE_STAGE_* codes were reported, one bit each. */
static uint32_t record_stages(uint32_t stage, float fraction, void *user_data) {
    (void)fraction;
    *(uint32_t *)user_data |= 1u << stage;
    return 0;
}

/* A study whose working set exceeds the memory budget returns UPTAKE_ERR_MEMORY, with the sizes
   in the message, instead of aborting the host; so does a normal study under a tiny budget. */
static void test_memory_budget(void) {
    static float huge_pet[512], huge_ct[512];
    UptakeVolume pet, ct;
    const float *data[2] = {huge_pet, huge_ct};
    UptakeVolume *out[2] = {&pet, &ct};
    for (int k = 0; k < 2; k++) {
        CHECK(uptake_volume_init(out[k]) == UPTAKE_OK);
        for (int a = 0; a < 3; a++) {
            out[k]->dims[a] = 8;
            out[k]->spacing_mm[a] = 320.0; /* a 3 mm grid of 854³ voxels: 5 GB */
        }
        out[k]->data = data[k];
        out[k]->data_len = 512;
    }
    for (int i = 0; i < 512; i++) {
        huge_pet[i] = 2.0f;
        huge_ct[i] = 40.0f;
    }
    CHECK(uptake_volume_check(&pet) == UPTAKE_OK); /* a valid volume: the study is too big */
    UptakeAnalyzer *analyzer = NULL;
    CHECK(uptake_analyzer_create(NULL, &analyzer) == UPTAKE_OK);
    UptakeReport *report = NULL;
    CHECK_ERR(uptake_analyze(analyzer, &pet, &ct, UPTAKE_TRACER_PSMA, NULL, &report),
              UPTAKE_ERR_MEMORY, "854×854×854");
    CHECK(report == NULL);

    UptakeVolume small_pet, small_ct;
    make_study(&small_pet, &small_ct);
    UptakeAnalyzeOptions options;
    CHECK(uptake_analyze_options_init(&options) == UPTAKE_OK);
    CHECK(options.memory_budget_mb == 0 && options.min_ct_coverage == 0.9);
    CHECK(options.paper_regions == 0);
    options.memory_budget_mb = 1;
    CHECK_ERR(uptake_analyze(analyzer, &small_pet, &small_ct, UPTAKE_TRACER_PSMA, &options,
                             &report),
              UPTAKE_ERR_MEMORY, "memory budget of 1.0 MiB");
    options.memory_budget_mb = 256;
    uint32_t stages = 0;
    options.progress = record_stages;
    options.progress_user_data = &stages;
    CHECK(uptake_analyze(analyzer, &small_pet, &small_ct, UPTAKE_TRACER_PSMA, &options,
                         &report) == UPTAKE_OK);
    uptake_report_free(report);
    report = NULL;
    /* Every stage the header names is reported, UPTAKE_STAGE_REFORMAT included. */
    CHECK(stages == ((1u << UPTAKE_STAGE_CHECK) | (1u << UPTAKE_STAGE_GRID) |
                     (1u << UPTAKE_STAGE_REGIONS) | (1u << UPTAKE_STAGE_REFORMAT) |
                     (1u << UPTAKE_STAGE_CLASSIFY) | (1u << UPTAKE_STAGE_STAGING)));

    /* A CT covering a sliver of the PET is refused unless the host lowers the minimum. */
    UptakeVolume sliver = small_ct;
    sliver.dims[2] = 1;
    sliver.data_len = (uint64_t)N * N;
    CHECK(uptake_analyze_options_init(&options) == UPTAKE_OK);
    CHECK_ERR(uptake_analyze(analyzer, &small_pet, &sliver, UPTAKE_TRACER_PSMA, &options,
                             &report),
              UPTAKE_ERR_INVALID_ARGUMENT, "axial extent");
    options.min_ct_coverage = 0.0;
    CHECK(uptake_analyze(analyzer, &small_pet, &sliver, UPTAKE_TRACER_PSMA, &options,
                         &report) == UPTAKE_OK);
    const char *json = NULL;
    CHECK(uptake_report_json(report, &json) == UPTAKE_OK);
    CHECK(json != NULL && strstr(json, "\"ct_coverage\"") != NULL);
    uptake_report_free(report);
    /* One rule for the ABI, the CLI and staging: a threshold in [0, 1]; 0 calls every region
       suspicious (negative is the model's operating point). */
    CHECK(uptake_analyze_options_init(&options) == UPTAKE_OK);
    options.threshold = 1.5;
    report = NULL;
    CHECK_ERR(uptake_analyze(analyzer, &small_pet, &small_ct, UPTAKE_TRACER_PSMA, &options,
                             &report),
              UPTAKE_ERR_INVALID_ARGUMENT, "threshold");
    options.threshold = 0.0;
    CHECK(uptake_analyze(analyzer, &small_pet, &small_ct, UPTAKE_TRACER_PSMA, &options,
                         &report) == UPTAKE_OK);
    size_t count = 0;
    const UptakeStaging *staging = NULL;
    CHECK(uptake_report_finding_count(report, &count) == UPTAKE_OK);
    CHECK(uptake_report_staging(report, &staging) == UPTAKE_OK);
    CHECK(count == 2 && staging->suspicious_count == 2);
    uptake_report_free(report);
    uptake_analyzer_free(analyzer);
}

struct worker {
    const UptakeAnalyzer *analyzer;
    const UptakeVolume *pet;
    const UptakeVolume *ct;
    uint32_t status;
    size_t count;
    uint32_t first_region;
    float first_p;
};

static void *analyze_worker(void *arg) {
    struct worker *w = (struct worker *)arg;
    UptakeReport *report = NULL;
    w->status = uptake_analyze(w->analyzer, w->pet, w->ct, UPTAKE_TRACER_PSMA, NULL, &report);
    const UptakeFinding *findings = NULL;
    if (w->status == UPTAKE_OK &&
        uptake_report_findings(report, &findings, &w->count) == UPTAKE_OK && w->count > 0) {
        w->first_region = findings[0].region_id;
        w->first_p = findings[0].p_suspicious;
    }
    uptake_report_free(report);
    return NULL;
}

static void test_analyze(void) {
    UptakeVolume pet, ct;
    make_study(&pet, &ct);
    float pet_before = study_pet[100];

    for (int round = 0; round < 2; round++) { /* repeated create/analyze/free: no leak */
        UptakeAnalyzer *analyzer = NULL;
        CHECK(uptake_analyzer_create(NULL, &analyzer) == UPTAKE_OK);
        UptakeReport *report = NULL;
        CHECK(uptake_analyze(analyzer, &pet, &ct, UPTAKE_TRACER_PSMA, NULL, &report) == UPTAKE_OK);
        size_t count = 0;
        CHECK(uptake_report_finding_count(report, &count) == UPTAKE_OK);
        CHECK(count == 2); /* two hot spots, two regions */
        const UptakeFinding *findings = NULL;
        CHECK(uptake_report_findings(report, &findings, &count) == UPTAKE_OK);
        CHECK(findings[0].suv_max > 4.0 && findings[1].suv_max > 4.0);
        const UptakeStaging *staging = NULL;
        CHECK(uptake_report_staging(report, &staging) == UPTAKE_OK);
        CHECK(staging->suspicious_count <= 2);
        const char *json = NULL;
        CHECK(uptake_report_json(report, &json) == UPTAKE_OK);
        CHECK(json != NULL && strstr(json, "\"schema_version\"") != NULL);
        const uint32_t *labels = NULL;
        uint32_t dims[3] = {0, 0, 0};
        CHECK(uptake_report_label_map(report, &labels, dims) == UPTAKE_OK);
        CHECK(dims[0] == N && dims[1] == N && dims[2] == N);
        CHECK(labels[8 + N * (10 + N * 12)] != 0); /* the brighter spot's maximum is labelled */
        uptake_report_free(report);
        uptake_analyzer_free(analyzer);
    }
    CHECK(study_pet[100] == pet_before); /* caller's data untouched */

    UptakeAnalyzer *analyzer = NULL;
    CHECK(uptake_analyzer_create(NULL, &analyzer) == UPTAKE_OK);
    UptakeReport *report = (UptakeReport *)0x1;
    UptakeAnalyzeOptions options;
    CHECK(uptake_analyze_options_init(&options) == UPTAKE_OK);
    int calls = 0;
    options.progress = cancel_at_classify;
    options.progress_user_data = &calls;
    CHECK_ERR(uptake_analyze(analyzer, &pet, &ct, UPTAKE_TRACER_PSMA, &options, &report),
              UPTAKE_ERR_CANCELLED, "cancelled");
    CHECK(report == NULL);
    CHECK(calls >= 4);

    CHECK(uptake_analyze_options_init(&options) == UPTAKE_OK);
    CHECK_ERR(uptake_analyze(analyzer, &pet, &ct, 7, &options, &report),
              UPTAKE_ERR_INVALID_ARGUMENT, "tracer");
    CHECK_ERR(uptake_analyze(analyzer, NULL, &ct, UPTAKE_TRACER_FDG, &options, &report),
              UPTAKE_ERR_INVALID_ARGUMENT, "pet is NULL");
    CHECK_ERR(uptake_analyze(NULL, &pet, &ct, UPTAKE_TRACER_FDG, &options, &report),
              UPTAKE_ERR_INVALID_ARGUMENT, "analyzer is NULL");
    CHECK_ERR(uptake_analyze(analyzer, &pet, &ct, UPTAKE_TRACER_FDG, &options, NULL),
              UPTAKE_ERR_INVALID_ARGUMENT, "out is NULL");
    options.pet_units = UPTAKE_PET_UNITS_BQML;
    CHECK_ERR(uptake_analyze(analyzer, &pet, &ct, UPTAKE_TRACER_PSMA, &options, &report),
              UPTAKE_ERR_INVALID_ARGUMENT, "suv_factor");
    CHECK(uptake_analyze_options_init(&options) == UPTAKE_OK);
    options.connectivity = 5;
    CHECK_ERR(uptake_analyze(analyzer, &pet, &ct, UPTAKE_TRACER_PSMA, &options, &report),
              UPTAKE_ERR_INVALID_ARGUMENT, "connectivity");
    CHECK(uptake_analyze_options_init(&options) == UPTAKE_OK);
    /* 0, what hosts compiled when the field was reserved write, is the default. */
    CHECK(options.distant_threshold == 0.0f);
    options.distant_threshold = 1.5f;
    CHECK_ERR(uptake_analyze(analyzer, &pet, &ct, UPTAKE_TRACER_PSMA, &options, &report),
              UPTAKE_ERR_INVALID_ARGUMENT, "distant_threshold");
    options.distant_threshold = NAN;
    CHECK_ERR(uptake_analyze(analyzer, &pet, &ct, UPTAKE_TRACER_PSMA, &options, &report),
              UPTAKE_ERR_INVALID_ARGUMENT, "distant_threshold");
    options.distant_threshold = 0.9f;
    CHECK(uptake_analyze(analyzer, &pet, &ct, UPTAKE_TRACER_PSMA, &options, &report) == UPTAKE_OK);
    uptake_report_free(report);
    report = NULL;
    CHECK(uptake_analyze_options_init(&options) == UPTAKE_OK);
    options.struct_size = 4;
    CHECK_ERR(uptake_analyze(analyzer, &pet, &ct, UPTAKE_TRACER_PSMA, &options, &report),
              UPTAKE_ERR_INVALID_ARGUMENT, "struct_size");
    UptakeVolume far = ct;
    far.origin_mm[2] = 1.0e5;
    CHECK_ERR(uptake_analyze(analyzer, &pet, &far, UPTAKE_TRACER_PSMA, NULL, &report),
              UPTAKE_ERR_INVALID_ARGUMENT, "overlap");
    study_pet[5] = NAN;
    CHECK_ERR(uptake_analyze(analyzer, &pet, &ct, UPTAKE_TRACER_PSMA, NULL, &report),
              UPTAKE_ERR_INVALID_ARGUMENT, "non-finite");
    study_pet[5] = 0.5f;
    CHECK(report == NULL);
    CHECK(uptake_report_findings(NULL, NULL, NULL) == UPTAKE_ERR_INVALID_ARGUMENT);
    uptake_report_free(NULL);

    /* Four threads on one analyzer give what one thread gives. */
    struct worker serial = {analyzer, &pet, &ct, 99, 0, 0, 0.0f};
    analyze_worker(&serial);
    CHECK(serial.status == UPTAKE_OK && serial.count == 2);
    struct worker workers[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        workers[i] = (struct worker){analyzer, &pet, &ct, 99, 0, 0, 0.0f};
        CHECK(pthread_create(&threads[i], NULL, analyze_worker, &workers[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        CHECK(workers[i].status == UPTAKE_OK);
        CHECK(workers[i].count == serial.count);
        CHECK(workers[i].first_region == serial.first_region);
        CHECK(workers[i].first_p == serial.first_p);
    }
    uptake_analyzer_free(analyzer);
}

int main(void) {
    test_versions();
    test_last_error_copy();
    test_analyzer();
    test_volume();
    test_logging();
    test_plugin_table();
    test_analyze();
    test_memory_budget();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
