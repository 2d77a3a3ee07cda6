/* A C robot stack embedding brainstem through its C ABI. First the built-in demo: a callback as
 * the joints, a synthetic camera, an instruction and a question; it reads events as JSON and
 * checks that bad input is refused with a reason. Then, given a configuration whose motion
 * decoder follows the measured robot (argv[2]), a simulated robot that reports back what it
 * was commanded: nothing is commanded before its first state, the first command starts where
 * it was measured, and pause, resume and the emergency stop bring the robot to rest. Built
 * with AddressSanitizer and UndefinedBehaviorSanitizer by the test that runs it. Exit status
 * 0 when every check held. */

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
                      const double *velocities, const double *accelerations, size_t joints) {
    (void)user, (void)time_ns, (void)positions, (void)velocities, (void)accelerations, (void)joints;
    atomic_store(&ticks, tick + 1);
    atomic_store(&last_mode, mode);
}

/* The simulated robot of the second part: it is where it was last commanded. */
enum { MAX_JOINTS = 128 };
static _Atomic double robot_at[MAX_JOINTS];
static _Atomic double first_command[MAX_JOINTS];
static atomic_ulong robot_ticks;
static atomic_int robot_mode;
static atomic_int commanded;

static void on_robot(void *user, uint64_t tick, uint64_t time_ns, int32_t mode, const double *positions,
                     const double *velocities, const double *accelerations, size_t joints) {
    (void)user, (void)time_ns, (void)velocities, (void)accelerations;
    int first = !atomic_exchange(&commanded, 1);
    for (size_t j = 0; j < joints && j < MAX_JOINTS; j++) {
        if (first) {
            atomic_store(&first_command[j], positions[j]);
        }
        atomic_store(&robot_at[j], positions[j]);
    }
    atomic_store(&robot_ticks, tick + 1);
    atomic_store(&robot_mode, mode);
}

static int fail(int code, const char *what) {
    fprintf(stderr, "%s: %s\n", what, brainstem_last_error());
    return code;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Pushes a frame from the one camera and the robot's state, both captured now. */
static int observe(BrainstemRuntime *rt, size_t joints, int i) {
    enum { W = 64, H = 48 };
    static uint8_t pixels[W * H * 3];
    for (int p = 0; p < W * H; p++) {
        pixels[3 * p] = (uint8_t)(p + i), pixels[3 * p + 1] = 40, pixels[3 * p + 2] = (uint8_t)(i * 3);
    }
    BrainstemImage view = {pixels, W, H};
    uint64_t now = brainstem_now_ns(rt);
    if (brainstem_push_frames_rgb(rt, &view, 1, now) != 0) {
        return fail(20, "push_frames_rgb");
    }
    double at[MAX_JOINTS];
    for (size_t j = 0; j < joints; j++) {
        at[j] = atomic_load(&robot_at[j]);
    }
    return brainstem_push_state_at(rt, now, at, NULL, joints) != 0 ? fail(21, "push_state_at") : 0;
}

/* Runs the simulated robot for `ms` milliseconds; returns the chunks finished meanwhile, or -1. */
static int run_robot(BrainstemRuntime *rt, size_t joints, int ms) {
    char event[4096];
    int chunks = 0;
    for (int i = 0; i < ms / 10; i++) {
        if (observe(rt, joints, i) != 0) {
            return -1;
        }
        while (brainstem_next_event_json(rt, event, sizeof event) > 0) {
            chunks += strstr(event, "\"Chunk\"") != NULL;
        }
        sleep_ms(10);
    }
    return chunks;
}

static int follow_measured_robot(const char *config) {
    BrainstemRuntime *rt = brainstem_runtime_new(config, NULL, on_robot, NULL);
    if (!rt) {
        return fail(10, "brainstem_runtime_new (measured)");
    }
    size_t joints = brainstem_joint_count(rt);
    if (joints > MAX_JOINTS) {
        return 11;
    }
    sleep_ms(50);
    if (atomic_load(&commanded)) {
        fprintf(stderr, "the robot was commanded before its state was measured\n");
        return 12;
    }
    double measured[MAX_JOINTS];
    for (size_t j = 0; j < joints; j++) {
        measured[j] = 0.01 * (double)(j % 7);
        atomic_store(&robot_at[j], measured[j]);
    }
    uint64_t future = brainstem_now_ns(rt) + 1000000000ULL;
    if (brainstem_push_state_at(rt, future, measured, NULL, joints) != -1 || !strstr(brainstem_last_error(), "after")) {
        return fail(13, "a state from the future was not refused");
    }
    uintptr_t odd = (uintptr_t)measured + 1;
    if (brainstem_push_state_at(rt, 0, (const double *)odd, NULL, joints) != -1 ||
        !strstr(brainstem_last_error(), "aligned")) {
        return fail(14, "a misaligned state was not refused");
    }
    if (brainstem_push_frames_rgb(rt, NULL, 2, 0) != -1 || !strstr(brainstem_last_error(), "cameras")) {
        return fail(15, "two views for one camera were not refused");
    }
    if (brainstem_set_instruction(rt, "pick up the red ball") != 0) {
        return fail(16, "set_instruction");
    }
    int chunks = run_robot(rt, joints, 3000);
    for (size_t j = 0; j < joints; j++) {
        if (fabs(atomic_load(&first_command[j]) - measured[j]) > 1e-3) {
            fprintf(stderr, "joint %zu's first command %g is not where it was measured, %g\n", j,
                    atomic_load(&first_command[j]), measured[j]);
            return 17;
        }
    }
    if (brainstem_pause(rt) != 0 || run_robot(rt, joints, 1000) < 0 || atomic_load(&robot_mode) != 3) {
        fprintf(stderr, "paused, the robot is in mode %d, not holding\n", atomic_load(&robot_mode));
        return 18;
    }
    int resumed = brainstem_resume(rt) == 0 ? run_robot(rt, joints, 2000) : -1;
    if (brainstem_emergency_stop(rt) != 0 || run_robot(rt, joints, 1000) < 0 || atomic_load(&robot_mode) != 3) {
        fprintf(stderr, "after the emergency stop, the robot is in mode %d, not holding\n", atomic_load(&robot_mode));
        return 19;
    }
    brainstem_runtime_free(rt);
    printf("measured robot: ticks %lu, chunks %d before the pause, %d after it\n", atomic_load(&robot_ticks), chunks,
           resumed);
    return chunks > 0 && resumed > 0 ? 0 : 22;
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
        /* Too small a buffer, or none, keeps the event for the next call. */
        while ((needed = brainstem_next_event_json(rt, small, sizeof small)) > 0) {
            if (brainstem_next_event_json(rt, NULL, sizeof event) != needed) {
                fprintf(stderr, "a query without a buffer lost the event\n");
                return 6;
            }
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
    if (!(driven > 100 && plans > 0 && answers == 1 && chunks >= 10 && failures == 0 && telemetry > 100)) {
        return 1;
    }
    return argc > 2 ? follow_measured_robot(argv[2]) : 0;
}
