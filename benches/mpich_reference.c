/*
 * The MPICH side of `benches/rmpi_vs_mpich.rs`: the same measurements as the bench's RMPI
 * ranks, written against MPI. The bench builds it with `mpicc -O2` and runs it under
 * `mpiexec -n N`.
 *
 *   mpich_reference MODE WARMUP ITERS REPS
 *
 * MODE is one of
 *   init         MPI_Init, MPI_Finalize, nothing else (the launch row; the other arguments
 *                are ignored);
 *   pingpong     8-byte round trips between ranks 0 and 1;
 *   transfer     8 MB messages from rank 0 to rank 1, one way; rank 1 answers the last message
 *                of each repetition with 1 byte;
 *   allreduce8   MPI_Allreduce of one double (MPI_SUM);
 *   allreduce8m  MPI_Allreduce of 1 Mi doubles (8 MB, MPI_SUM elementwise).
 *
 * WARMUP operations run untimed, then REPS repetitions of ITERS timed operations each. Rank 0
 * prints one line,
 *
 *   BENCH-RESULT MODE RANKS CHECK ns=T1,T2,...
 *
 * with the mean time of one operation in each repetition in nanoseconds, and CHECK `ok` when
 * the values received were the ones expected (`bad` otherwise).
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIG_LEN (1 << 20) /* doubles: 8 MB */

static int rank, cnt;
static int good = 1;

static void pingpong(long n) {
    double x = 0.0;
    for (long i = 0; i < n; i++) {
        if (rank == 0) {
            double sent = (double)i;
            MPI_Send(&sent, 1, MPI_DOUBLE, 1, 0, MPI_COMM_WORLD);
            MPI_Recv(&x, 1, MPI_DOUBLE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (x != sent) good = 0;
        } else if (rank == 1) {
            MPI_Recv(&x, 1, MPI_DOUBLE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(&x, 1, MPI_DOUBLE, 0, 0, MPI_COMM_WORLD);
        }
    }
}

static void transfer(long n, double *buf) {
    char ack = 0;
    for (long i = 0; i < n; i++) {
        if (rank == 0) {
            MPI_Send(buf, BIG_LEN, MPI_DOUBLE, 1, 0, MPI_COMM_WORLD);
        } else if (rank == 1) {
            MPI_Recv(buf, BIG_LEN, MPI_DOUBLE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (buf[BIG_LEN - 1] != 0.5 * (BIG_LEN - 1)) good = 0;
        }
    }
    if (rank == 0) {
        MPI_Recv(&ack, 1, MPI_CHAR, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else if (rank == 1) {
        MPI_Send(&ack, 1, MPI_CHAR, 0, 1, MPI_COMM_WORLD);
    }
}

static void allreduce8(long n) {
    for (long i = 0; i < n; i++) {
        double mine = (double)(rank + 1), sum = 0.0;
        MPI_Allreduce(&mine, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        if (sum != cnt * (cnt + 1) / 2.0) good = 0;
    }
}

static void allreduce8m(long n, double *in, double *out) {
    for (long i = 0; i < n; i++) {
        MPI_Allreduce(in, out, BIG_LEN, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        if (out[BIG_LEN - 1] != cnt * 0.5 * (BIG_LEN - 1)) good = 0;
    }
}

static void run(const char *mode, long n, double *a, double *b) {
    if (strcmp(mode, "pingpong") == 0) {
        pingpong(n);
    } else if (strcmp(mode, "transfer") == 0) {
        transfer(n, a);
    } else if (strcmp(mode, "allreduce8") == 0) {
        allreduce8(n);
    } else if (strcmp(mode, "allreduce8m") == 0) {
        allreduce8m(n, a, b);
    } else {
        if (rank == 0) fprintf(stderr, "mpich_reference: unknown mode %s\n", mode);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    if (argc < 2) {
        fprintf(stderr, "usage: mpich_reference MODE WARMUP ITERS REPS\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const char *mode = argv[1];
    if (strcmp(mode, "init") == 0) {
        MPI_Finalize();
        return 0;
    }
    if (argc < 5) {
        fprintf(stderr, "usage: mpich_reference MODE WARMUP ITERS REPS\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    long warmup = atol(argv[2]), iters = atol(argv[3]), reps = atol(argv[4]);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &cnt);
    if (iters < 1 || reps < 1 || ((strcmp(mode, "pingpong") == 0 ||
                                   strcmp(mode, "transfer") == 0) && cnt < 2)) {
        if (rank == 0) fprintf(stderr, "mpich_reference: bad arguments\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }

    double *a = malloc(sizeof(double) * BIG_LEN), *b = malloc(sizeof(double) * BIG_LEN);
    double *times = malloc(sizeof(double) * reps);
    if (!a || !b || !times) MPI_Abort(MPI_COMM_WORLD, 3);
    for (long i = 0; i < BIG_LEN; i++) {
        a[i] = 0.5 * i;
        b[i] = 0.0;
    }

    run(mode, warmup, a, b);
    for (long r = 0; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double start = MPI_Wtime();
        run(mode, iters, a, b);
        times[r] = (MPI_Wtime() - start) / iters;
    }

    /* Every rank's check counts: rank 1 is the one that sees a transfer's data. */
    int all_good = 0;
    MPI_Reduce(&good, &all_good, 1, MPI_INT, MPI_LAND, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("BENCH-RESULT %s %d %s ns=", mode, cnt, all_good ? "ok" : "bad");
        for (long r = 0; r < reps; r++) printf("%s%.0f", r ? "," : "", times[r] * 1e9);
        printf("\n");
        fflush(stdout);
    }
    free(a);
    free(b);
    free(times);
    MPI_Finalize();
    return 0;
}
