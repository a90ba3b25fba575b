# frozen_string_literal: true

module TaskerEvents
  # Which step completed, within which task: what {TaskerEvents.dispatch_step_events} needs to
  # find the step's declared events and to fill in their metadata.
  #
  # @example
  #   TaskerEvents::StepContext.new(
  #     task_uuid: task_uuid, step_uuid: step_uuid, step_name: "process_payment",
  #     namespace: "payments", task_name: "credit_card_payment", task_version: "1.0.0",
  #     correlation_id: correlation_id, attempt: 1
  #   )
  class StepContext
    REQUIRED = %i[step_name namespace task_name task_version].freeze
    OPTIONAL = %i[task_uuid step_uuid correlation_id attempt].freeze

    attr_reader(*REQUIRED, *OPTIONAL)

    # @param step_name [String] as in the task template
    # @param namespace [String] the template's `namespace_name`
    # @param task_name [String] the template's `name`
    # @param task_version [String] the template's `version`
    # @param task_uuid [String, nil]
    # @param step_uuid [String, nil] with `attempt`, identifies a completion for deduplication
    # @param correlation_id [String, nil] defaults to task_uuid, as the events' metadata does
    # @param attempt [Integer, nil] 1 for the first try; compared with the step's retry limit
    # @raise [ValidationError] naming a missing or mistyped value
    def initialize(step_name:, namespace:, task_name:, task_version:, task_uuid: nil,
                   step_uuid: nil, correlation_id: nil, attempt: nil)
      @step_name = text(:step_name, step_name)
      @namespace = text(:namespace, namespace)
      @task_name = text(:task_name, task_name)
      @task_version = text(:task_version, task_version)
      @task_uuid = task_uuid&.to_s
      @step_uuid = step_uuid&.to_s
      @correlation_id = (correlation_id || task_uuid)&.to_s
      @attempt = attempt.nil? ? nil : positive(attempt)
      freeze
    end

    # @return [Hash{Symbol => Object}]
    def to_h
      (REQUIRED + OPTIONAL).to_h { |key| [key, public_send(key)] }
    end

    private

    def text(name, value)
      return value.to_s if (value.is_a?(String) || value.is_a?(Symbol)) && !value.to_s.empty?

      raise ValidationError, "StepContext #{name} must be a non-empty String, got #{value.inspect}"
    end

    def positive(value)
      return value if value.is_a?(Integer) && value.positive?

      raise ValidationError, "StepContext attempt must be a positive Integer, got #{value.inspect}"
    end
  end
end
