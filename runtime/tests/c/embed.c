/* A C robot stack embedding brainstem through its C ABI: the built-in demo, a callback as the
 * joints, a synthetic camera, an instruction and a question; it reads events as JSON, checks
 * that bad input is refused with a reason, and prints what it saw. Exit status 0 when the
 * robot was driven, planned for and answered. */

#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brainstem.h"

static atomic_ulong ticks;
static atomic_int last_mode;

static void on_joints(void *user, uint64_t tick, uint64_t time_ns, int32_t mode, const double *positions,
                      const double *velocities, size_t joints) {
    (void)user, (void)time_ns, (void)positions, (void)velocities, (void)joints;
    atomic_store(&ticks, tick + 1);
    atomic_store(&last_mode, mode);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
    const char *cache = argc > 1 ? argv[1] : NULL;
    BrainstemRuntime *rt = brainstem_runtime_new(NULL, cache, on_joints, NULL);
    if (!rt) {
        fprintf(stderr, "brainstem_runtime_new: %s\n", brainstem_last_error());
        return 2;
    }
    size_t joints = brainstem_joint_count(rt);
    double *state = calloc(joints, sizeof(double));
    state[3] = NAN;
    if (brainstem_push_state(rt, state, joints) != -1 || !strstr(brainstem_last_error(), "NaN")) {
        fprintf(stderr, "a NaN state was not refused: %s\n", brainstem_last_error());
        return 3;
    }
    if (brainstem_set_instruction(rt, "pick up the red ball") != 0 || brainstem_ask(rt, "What do you see?") < 0) {
        fprintf(stderr, "%s\n", brainstem_last_error());
        return 4;
    }
    enum { W = 96, H = 64 };
    static uint8_t frame[W * H * 3];
    char small[8], event[4096];
    int plans = 0, answers = 0, chunks = 0, failures = 0;
    for (int i = 0; i < 600 && !(plans && answers && chunks >= 10); i++) {
        for (int p = 0; p < W * H; p++) {
            frame[3 * p] = (uint8_t)(p + i), frame[3 * p + 1] = (uint8_t)(p / W * 4), frame[3 * p + 2] = 90;
        }
        if (brainstem_push_frame_rgb(rt, frame, W, H) != 0) {
            fprintf(stderr, "push_frame: %s\n", brainstem_last_error());
            return 5;
        }
        size_t needed;
        /* Too small a buffer keeps the event for the next call. */
        while ((needed = brainstem_next_event_json(rt, small, sizeof small)) > 0) {
            if (needed > sizeof event || brainstem_next_event_json(rt, event, sizeof event) != needed) {
                fprintf(stderr, "an event of %zu bytes was lost\n", needed);
                return 6;
            }
            plans += strstr(event, "\"Plan\"") != NULL;
            answers += strstr(event, "\"Answer\"") != NULL;
            chunks += strstr(event, "\"Chunk\"") != NULL;
            failures += strstr(event, "\"StageFailed\"") != NULL;
        }
        sleep_ms(20);
    }
    size_t telemetry = brainstem_telemetry_json(rt, NULL, 0);
    brainstem_runtime_free(rt);
    free(state);
    unsigned long driven = atomic_load(&ticks);
    printf("joints %zu, ticks %lu, last mode %d, plans %d, answers %d, chunks %d, failures %d, telemetry %zu bytes\n",
           joints, driven, atomic_load(&last_mode), plans, answers, chunks, failures, telemetry);
    return driven > 100 && plans > 0 && answers == 1 && chunks >= 10 && failures == 0 && telemetry > 100 ? 0 : 1;
}
