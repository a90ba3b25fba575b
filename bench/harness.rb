# frozen_string_literal: true

require "json"
require "securerandom"
require "time"

# What every benchmark figure shares: the payloads, timing with medians of several runs, and
# the process's resident memory.
module Bench
  # The design document's payment payload (about 200 bytes as JSON).
  def self.payment_payload
    { transaction_id: "TXN-#{SecureRandom.hex(6)}", amount: 99.99, currency: "USD",
      payment_method: "credit_card", processed_at: "2026-12-04T10:00:00Z",
      idempotency_key: SecureRandom.uuid }
  end

  # The same with line items, about 4 KB as JSON.
  def self.large_payload
    items = Array.new(28) do |i|
      { sku: "SKU-#{i.to_s.rjust(6, "0")}", name: "Item number #{i} of the order",
        quantity: (i % 5) + 1, unit_price: 10.5 + i, tags: %w[retail standard] }
    end
    payment_payload.merge(items:, note: "x" * 300)
  end

  PAYLOADS = { "200 B" => payment_payload, "4 KB" => large_payload }.freeze

  # The median and spread of several measurements.
  Sample = Struct.new(:runs) do
    def median
      sorted = runs.sort
      mid = sorted.size / 2
      sorted.size.odd? ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2.0
    end

    # (max - min) / median: above 0.2 the runs disagreed enough to say so.
    def spread
      median.zero? ? 0.0 : (runs.max - runs.min) / median.to_f
    end

    def wide? = spread > 0.2
  end

  def self.monotonic = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  def self.thread_cpu = Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID)

  # Runs the block `runs` times after one warm-up run; the block returns one measurement.
  # @return [Sample]
  def self.sample(runs, &measure)
    measure.call
    Sample.new(Array.new(runs, &->(_) { measure.call }))
  end

  # Nanoseconds of the calling thread's CPU per call of the block, over `iterations` calls.
  def self.cpu_ns_per_call(iterations, &)
    started = thread_cpu
    iterations.times(&)
    (thread_cpu - started) * 1e9 / iterations
  end

  # The process's resident set size in MiB.
  def self.rss_mib
    File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i / 1024.0
  end

  def self.percentile(sorted, fraction)
    sorted[((sorted.size - 1) * fraction).round]
  end

  # Waits until the block is true, for at most `timeout` seconds.
  def self.wait_until(timeout)
    deadline = monotonic + timeout
    sleep 0.0005 until yield || monotonic > deadline
    yield
  end
end
