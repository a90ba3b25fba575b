# frozen_string_literal: true

require "fileutils"
require "securerandom"
require "tempfile"
require "tmpdir"
require "yaml"

# Helpers for the specs of declared events: task templates written to temporary files, step
# contexts that match them, and the standard error the Rust core logs to.
module DeclaredEventHelpers
  TASK_NAME = "spec_task"
  STEP_NAME = "spec_step"
  EXAMPLES_DIR = File.expand_path("../../examples", __dir__)
  EXAMPLE_TEMPLATE = File.join(EXAMPLES_DIR, "templates/payments/credit_card_payment/1.0.0.yaml")

  # A publisher that records each hook call in `calls`, and raises in the hook `raise_in`
  # for the event named `failing_event` (for every event when that is nil). Otherwise it
  # behaves like BasePublisher.
  class RecordingPublisher < TaskerEvents::BasePublisher
    HOOKS = %i[should_publish? transform_payload additional_metadata before_publish
               after_publish].freeze

    attr_reader :name, :calls

    def initialize(name, calls: [], raise_in: nil, failing_event: nil)
      super()
      @name = name
      @calls = calls
      @raise_in = raise_in
      @failing_event = failing_event
    end

    HOOKS.each do |hook|
      define_method(hook) do |step_result, declaration, context = nil|
        calls << [hook, declaration[:name]]
        raise "boom in #{hook}" if fails?(hook, declaration[:name])

        super(step_result, declaration, context)
      end
    end

    def on_publish_error(step_result, declaration, context, error)
      calls << [:on_publish_error, declaration[:name], step_result, context, error]
    end

    private

    def fails?(hook, event_name)
      hook == @raise_in && [nil, event_name].include?(@failing_event)
    end
  end

  # A directory removed after the example.
  def declared_tmp_dir
    @declared_tmp_dir ||= Dir.mktmpdir("tasker_events-spec")
  end

  # Writes `text` to a new file in {#declared_tmp_dir}.
  # @return [String] its path
  def write_declared_template(text, file_name = "#{SecureRandom.hex(4)}.yaml")
    path = File.join(declared_tmp_dir, file_name)
    FileUtils.mkdir_p(File.dirname(path))
    File.write(path, text)
    path
  end

  # Writes a template of task {TASK_NAME} 1.0.0 with one step, {STEP_NAME}, that declares
  # `events` (Hashes with String keys, as in YAML).
  # @return [String] its path
  def write_step_template(namespace, events, retry_policy: { "retryable" => true, "limit" => 3 })
    step = { "name" => STEP_NAME, "retry" => retry_policy, "publishes_events" => events }
    document = { "name" => TASK_NAME, "namespace_name" => namespace, "version" => "1.0.0",
                 "steps" => [step] }
    write_declared_template(YAML.dump(document))
  end

  # A context for {STEP_NAME} of {TASK_NAME} 1.0.0, with fresh task and step uuids.
  # @return [Hash]
  def declared_step_context(namespace, **overrides)
    { task_uuid: SecureRandom.uuid, step_uuid: SecureRandom.uuid, step_name: STEP_NAME,
      namespace:, task_name: TASK_NAME, task_version: "1.0.0", attempt: 1 }.merge(overrides)
  end

  # Dispatches a completion and waits until its events have been delivered.
  def dispatch_and_flush(context, step_result)
    expect(TaskerEvents.dispatch_step_events(context, step_result)).to be(true)
    expect(TaskerEvents.flush(timeout: 10)).to be(true)
  end

  # Runs the block with file descriptor 2 sent to a file, and returns what was written there:
  # the Rust core logs to standard error itself, not through Ruby's $stderr object. Colour
  # codes are removed, since the core adds them when standard error was a terminal at load.
  # @return [String]
  def capture_native_stderr
    saved = $stderr.dup
    Tempfile.create("tasker_events-stderr") do |file|
      begin
        $stderr.reopen(file)
        yield
      ensure
        $stderr.reopen(saved)
      end
      File.read(file.path).gsub(/\e\[[0-9;]*m/, "")
    end
  ensure
    saved&.close
  end
end

RSpec.configure do |config|
  config.include DeclaredEventHelpers

  config.after do
    FileUtils.rm_rf(@declared_tmp_dir) if @declared_tmp_dir
  end
end
