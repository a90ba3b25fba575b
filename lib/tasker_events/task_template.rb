# frozen_string_literal: true

module TaskerEvents
  # A task template's declared events, read and validated by the Rust core: event names,
  # namespace, conditions, delivery modes, JSON Schemas (compiled once) and duplicates.
  #
  # @example
  #   template = TaskerEvents::TaskTemplate.load("config/tasks/payments/credit_card_payment.yaml")
  #   template.step("process_payment").map { |event| event[:name] }
  class TaskTemplate
    # @param path [String]
    # @return [TaskTemplate]
    # @raise [TemplateError] naming the file, step, event and what is wrong
    def self.load(path)
      new(Native.load_template(path.to_s))
    end

    # @param patterns [Array<String>, String] paths or globs
    # @return [Array<String>] the files they name, each once
    # @raise [TemplateError] for a pattern that matches nothing
    def self.expand(patterns)
      Array(patterns).flat_map do |pattern|
        matches = Dir.glob(pattern.to_s)
        raise TemplateError, "no task template matches #{pattern.to_s.inspect}" if matches.empty?

        matches
      end.uniq
    end

    attr_reader :name, :namespace, :version, :description, :source, :steps, :domain_events

    # @param data [Hash] as returned by the native loader
    def initialize(data)
      @name = data[:name]
      @namespace = data[:namespace]
      @version = data[:version]
      @description = data[:description]
      @source = data[:source]
      @steps = data[:steps]
      @domain_events = data[:domain_events]
      freeze
    end

    # @param step_name [String]
    # @return [Array<Hash>, nil] the step's event declarations, nil for an unknown step
    def step(step_name)
      steps.find { |step| step[:name] == step_name.to_s }&.fetch(:publishes_events)
    end

    # @return [Array<String>] every publisher the template names
    def publisher_names
      (steps.flat_map { |s| s[:publishes_events] } + domain_events)
        .filter_map { |event| event[:publisher] }.uniq
    end
  end
end
