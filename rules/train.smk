# train: the particle-flow model (train.model) on the TFDS datasets of the particle-flow samples, and each
# tagger of tagger.models on the jet dataset; all sampled with the weights stage's weights.
# Checkpoints live beside the model. A retried attempt (a killed or pre-empted job) resumes from the
# newest unfinished checkpoint written with the same train config; anything else starts over. On SIGUSR1 or
# SIGTERM training checkpoints and exits with 75, so that the retry (profiles: retries) resumes. The shell
# `exec`s the launcher: SLURM signals every process of the job step, and a bash waiting for training would
# die at once, failing the job before the checkpoint is written (tests/test_slurm_preemption.py).


rule train:
    input:
        unpack(train_inputs),
    output:
        model=f"{RESULTS}/models/{{model}}/model.pt",
        metrics=f"{RESULTS}/models/{{model}}/metrics.jsonl",
        provenance=f"{RESULTS}/models/{{model}}/provenance.json",
    params:
        **train_params(),
    log:
        f"{LOGS}/train/{{model}}.log",
    benchmark:
        f"{BENCH}/train/{{model}}.tsv"
    threads: train_threads
    resources:
        mem_mb=lambda wc, attempt: 8000 + 4000 * (attempt - 1),
        runtime=lambda wc, attempt: 120 * attempt,
        # One GPU unless the model's device is cpu; more for DDP with --set-resources train:gpu=N (train.batch_size
        # is the global batch, divisible by the GPU count).
        gpu=lambda wc: gpus_for(train_device(wc.model)),
    conda:
        "../envs/colliderflow.yaml"
    shell:
        "exec {params.launcher} train --data {input.data} {params.val} --weights {input.weights} --params {params.cfg:q}"
        " --seed {params.seed} -o {params.outdir} > {log} 2>&1"
